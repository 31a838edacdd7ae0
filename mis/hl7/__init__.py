"""HL7 v2 inbound: reading messages (`parse`), applying them (`handlers`), acknowledging
them (`ack`) and receiving them over MLLP (`mllp`). The entry point that records and
applies one message is `mis.services_hl7.hl7_ingest`. See docs/adr/0015-hl7v2-inbound.md.
"""
