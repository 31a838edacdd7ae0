"""FHIR sync state: cursors per resource type, runs, quarantined resources, push jobs."""
