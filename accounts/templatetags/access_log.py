"""Plain-language labels for the patient's "Who opened my record" page."""

from django import template
from django.utils.translation import gettext_lazy as _

register = template.Library()

SUBJECTS = {
    "accounts.patientprofile": _("your personal details"),
    "accounts.consentrecord": _("your consents"),
    "accounts.identityverification": _("your identity check"),
    "accounts.user": _("your account"),
}
DETAILED = {
    ("accounts.patientprofile", "record"): _("your medical record"),
    ("accounts.patientprofile", "identity_scan"): _("your identity document scan"),
    ("accounts.patientprofile", "search"): _("a search that found you"),
}


@register.filter
def audit_subject(event) -> str:  # noqa: ANN001
    detail = event.detail or {}
    for key in (detail.get("what"), detail.get("file"), detail.get("via")):
        label = DETAILED.get((event.object_type, key))
        if label:
            return str(label)
    return str(SUBJECTS.get(event.object_type, _("your data")))


@register.filter
def role_label(value: str) -> str:
    from accounts.models import Role

    try:
        return str(Role(value).label)
    except ValueError:
        return value or str(_("Clinic staff"))
