"""MIS integration's data: identifiers linking portal rows to MIS resources (`links`),
FHIR sync state (`fhir_sync`) and HL7 v2 inbound messages (`hl7`)."""

from mis.models.fhir_sync import *  # noqa: F403
from mis.models.hl7 import *  # noqa: F403
from mis.models.links import *  # noqa: F403
from mis.models.push import *  # noqa: F403
