"""FHIR R4 with the MIS: the client (`client`), mapping of MIS resources to portal data
(`mappers`)."""
