"""The settings of the test process: the project's, in development mode.

DEBUG defaults to off (identity_playground/settings.py); the tests run with DEBUG on unless
the environment says otherwise, and every process a test starts (clusters, manage.py)
inherits the variable; so does EMBEDDED_REDIS_FILE, empty. pytest-django imports this
module before any conftest is loaded.
"""

from __future__ import annotations

import os

os.environ.setdefault("DEBUG", "on")
# a `make run` beside the tests must not become their Redis (nor their clusters' files)
os.environ.setdefault("EMBEDDED_REDIS_FILE", "")

from identity_playground.settings import *  # noqa: E402, F403

# The passwords the tests set are checked, never kept: MD5 makes each hash microseconds
# where PBKDF2's iterations cost a third of a second (Django's "Writing and running tests",
# "Speeding up the tests"). The clusters tests start use the project's hashers.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
