"""HL7 v2 inbound messages and their outcome."""
