"""A serving node freezes what start-up made and collects its youngest generation less often."""

from __future__ import annotations

import subprocess
import sys

from hub.gc_policy import OLDER_THRESHOLDS, YOUNG_THRESHOLD


def test_tuning_freezes_start_up_and_raises_the_young_threshold() -> None:
    # In a process of its own: the policy is for a node's whole life, not for the test run's.
    script = (
        "import gc; from hub.gc_policy import tune_for_serving; tune_for_serving(); "
        "print(gc.get_threshold(), gc.get_freeze_count() > 1000)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    assert out == f"{(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)} True"
