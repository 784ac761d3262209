"""System components that some tests need and the machine may lack (Chromium, Janus, network
namespaces): such a
test is skipped with one line that says what to install, or fails with that same line where
every component must be there (``LIVEHUB_TEST_REQUIRE_ALL=1``, as ``.ci/run`` sets it), so that
CI never passes by skipping.
"""

from __future__ import annotations

import functools
import os
import shutil

import pytest

# Set to 1 (CI): a missing component fails the test instead of skipping it.
REQUIRE_ALL = "LIVEHUB_TEST_REQUIRE_ALL"

# Debian's Chromium; LIVEHUB_CHROMIUM names another binary.
CHROMIUM: str = os.environ.get("LIVEHUB_CHROMIUM") or "/usr/bin/chromium"

# Debian's Janus; LIVEHUB_JANUS names another binary.
JANUS: str = os.environ.get("LIVEHUB_JANUS") or "/usr/bin/janus"


def _require_all() -> bool:
    return os.environ.get(REQUIRE_ALL, "").strip().lower() not in ("", "0", "false", "no", "off")


def require(component: str, present: bool, install: str) -> None:
    """Return if ``present``. Otherwise end the calling test (or fixture) with the one line
    ``needs <component>: <install>``: skipped, or failed (without a traceback) when the
    environment variable ``LIVEHUB_TEST_REQUIRE_ALL`` is set to 1 (any value but empty, ``0``,
    ``false``, ``no`` or ``off``)."""
    if present:
        return
    reason = f"needs {component}: {install}"
    if _require_all():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def require_chromium() -> str:
    """The path of the Chromium binary (:data:`CHROMIUM`), once :func:`require` has checked
    that it is an executable file."""
    present = os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)
    require(f"Chromium ({CHROMIUM})", present, "apt-get install chromium")
    return CHROMIUM


def require_janus() -> str:
    """The path of the Janus binary (:data:`JANUS`), once :func:`require` has checked that it
    is an executable file."""
    present = os.path.isfile(JANUS) and os.access(JANUS, os.X_OK)
    require(f"Janus ({JANUS})", present, "apt-get install janus")
    return JANUS


@functools.cache
def _namespace_probe() -> str | None:
    from tests.support.netns import probe

    return probe()


def require_netns() -> None:
    """Return once this process can make network namespaces joined by veth pairs
    (:mod:`tests.support.netns`): root, ``ip`` from iproute2, and a kernel that makes a veth
    pair inside a namespace (tried once per run). Otherwise end the test as :func:`require`
    does, with the first thing missing."""
    require("ip (iproute2)", shutil.which("ip") is not None, "apt-get install iproute2")
    require("root, for network namespaces", os.geteuid() == 0, "run the tests as root")
    failure = _namespace_probe()
    require(
        f"network namespaces with veth ({failure})",
        failure is None,
        "a kernel with network namespaces and veth",
    )
