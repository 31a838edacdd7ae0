"""Container health check for the web service (docker-compose.yml).

Healthy when /healthz answers and reports the database up. A 503 caused only by the
broker or the worker leaves the web process serving, so it is not restarted for it.
"""

import json
import os
import sys
import urllib.error
import urllib.request

# A host Django accepts: the first of ALLOWED_HOSTS (".example.org" allows example.org).
host = os.environ.get("ALLOWED_HOSTS", "").split(",")[0].strip().lstrip(".")
if not host or host == "*":
    host = "localhost"
request = urllib.request.Request(  # noqa: S310 - fixed loopback URL
    "http://127.0.0.1:8000/healthz",
    headers={"Host": host, "X-Forwarded-Proto": "https"},
)
try:
    with urllib.request.urlopen(request, timeout=8) as response:  # noqa: S310
        body = response.read()
except urllib.error.HTTPError as error:
    body = error.read()
except OSError as error:
    print(f"unhealthy: {error}")
    sys.exit(1)

try:
    checks = json.loads(body).get("checks", {})
except ValueError:
    print("unhealthy: /healthz did not answer JSON")
    sys.exit(1)
print(checks)
sys.exit(0 if checks.get("database") == "up" else 1)
