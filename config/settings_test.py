"""Settings for the test suite: the project's settings with a separate var/ directory.

Worker processes started by the tests use this module too, so they share the test database file
(SQLite), the embedded broker folder and local media with the test process.
"""

import os
from pathlib import Path

# Tests never reach a model hub: fail fast instead of waiting on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("IMPRINT_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test"))

from .settings import *  # noqa: E402,F403

# Password hashing is deliberately slow in production; tests create many users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Publishing enqueues a power measurement for the inference queue; the tests that start inference
# workers must not find a backlog of them. The tests of that hook turn it on.
WATERMARK_POWER_ON_PUBLISH = False
