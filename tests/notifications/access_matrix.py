"""Access-matrix rows for notifications (loaded by tests/test_access_matrix.py).

Action links open without signing in: the signed single-use token is the credential
(tests/notifications/test_action_links.py attacks it). Message settings are the
patient's own.
"""

from tests.scheduling.access_matrix_staff import CALENDAR, CLINIC, _appointment
from tests.test_access_matrix import Rule, only

NOT_PERSONAL = {"notifications:action_link"}

MATRIX = {
    "notifications:preferences": Rule(False, only("patient")),
    # The appointment's doctor, reception and admins (as the staff appointment page).
    "notifications:follow_up": Rule(True, own=CALENDAR, other=CLINIC, args=_appointment),
}
