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

# Debian's nginx (the reverse proxy deploy/ ships a configuration for); LIVEHUB_NGINX names
# another binary.
NGINX: str = os.environ.get("LIVEHUB_NGINX") or "/usr/sbin/nginx"

# Prometheus's promtool (Debian's prometheus package), which checks deploy/'s alert rules.
PROMTOOL: str = os.environ.get("LIVEHUB_PROMTOOL") or "/usr/bin/promtool"

# coturn's TURN server (Debian's coturn package).
TURNSERVER: str = os.environ.get("LIVEHUB_TURNSERVER") or "/usr/bin/turnserver"


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


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def require_nginx() -> str:
    """The path of the nginx binary (:data:`NGINX`), once :func:`require` has checked that it
    is an executable file."""
    require(f"nginx ({NGINX})", _executable(NGINX), "apt-get install nginx")
    return NGINX


def require_promtool() -> str:
    """The path of Prometheus's ``promtool`` (:data:`PROMTOOL`), once :func:`require` has
    checked that it is an executable file."""
    require(f"promtool ({PROMTOOL})", _executable(PROMTOOL), "apt-get install prometheus")
    return PROMTOOL


def require_turnserver() -> str:
    """The path of coturn's ``turnserver`` (:data:`TURNSERVER`), once :func:`require` has
    checked that it is an executable file."""
    require(f"coturn ({TURNSERVER})", _executable(TURNSERVER), "apt-get install coturn")
    return TURNSERVER


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
