"""Settings shared by every tier of the suite."""

from __future__ import annotations

import os

from hypothesis import settings

# One timeout unit for every wait in the tests, scalable on slow machines.
TIMEOUT = 10.0 * float(os.environ.get("HUB_TEST_TIMEOUT_SCALE", "1"))

settings.register_profile("hub", deadline=None, max_examples=200)
settings.load_profile("hub")
