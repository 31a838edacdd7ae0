"""What a handler returns (`Outcome`) or raises (`Rejected`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from accounts.models import PatientProfile
from mis.hl7 import ack as ackmod


class Rejected(Exception):
    """The message cannot be applied. `ack` is AR (do not send it again unchanged) or
    AE (an error on our side: sending it again may work)."""

    def __init__(
        self,
        code: str,
        reason: str,
        *,
        ack: str = "AR",
        error_code: str = ackmod.ERR_INTERNAL,
        patient: PatientProfile | None = None,
        then: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(reason)
        # Run after the handler's writes were undone, in the message's transaction: what
        # must be kept although the message is rejected (a review queue entry).
        self.then = then
        self.code = code
        self.reason = reason
        self.ack = ack
        self.error_code = error_code
        self.patient = patient


@dataclass
class Outcome:
    kind: str
    ids: list[int] = field(default_factory=list)
    patient: PatientProfile | None = None
    notes: list[str] = field(default_factory=list)
    summary: str = ""
