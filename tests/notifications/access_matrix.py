"""Access-matrix rows for notifications (loaded by tests/test_access_matrix.py).

Action links open without signing in: the signed single-use token is the credential
(tests/notifications/test_action_links.py attacks it). Message settings are the
patient's own.
"""

from tests.test_access_matrix import Rule, only

NOT_PERSONAL = {"notifications:action_link"}

MATRIX = {
    "notifications:preferences": Rule(False, only("patient")),
}
