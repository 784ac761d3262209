"""The client package stays apart from the server: importing every server module loads neither
``livehub_client`` nor ``aiortc`` (but the embedded SFU's module, which a node imports only
once a panel's stage is used, and which loads aiortc alone), and the client loads aiortc only
for its rtc names.

Each check runs in a fresh interpreter (``sys.executable``), since this test process has long
imported both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import livehub_client
from livehub_client import connection, rtc

ROOT = Path(__file__).resolve().parents[2]

SERVER_PACKAGES = ("hub", "rooms", "chat", "polls", "signalling")
MEDIA_MODULES = ("signalling.relay",)

# Imports every module of the server's packages (but ``__main__``, which runs the CLI), then
# prints the modules walked and those of the client side that got loaded.
_IMPORT_THE_SERVER = f"""
import importlib, json, pkgutil, sys

walked = []
for name in {SERVER_PACKAGES!r}:
    package = importlib.import_module(name)
    walked.append(name)
    for info in pkgutil.walk_packages(package.__path__, name + "."):
        if info.name.rpartition(".")[2] != "__main__" and info.name not in {MEDIA_MODULES!r}:
            importlib.import_module(info.name)
            walked.append(info.name)
loaded = sorted(
    m for m in sys.modules
    if m.partition(".")[0] in ("livehub_client", "aiortc")
)
for name in {MEDIA_MODULES!r}:
    importlib.import_module(name)
media = sorted(m for m in sys.modules if m.partition(".")[0] == "livehub_client")
print(json.dumps({{"walked": walked, "loaded": loaded, "media": media}}))
"""

_IMPORT_THE_CLIENT = """
import json, sys

import livehub_client
from livehub_client.connection import HubClient
before = "aiortc" in sys.modules
link = livehub_client.PeerLink
after = "aiortc" in sys.modules
from livehub_client.rtc import PeerLink
print(json.dumps({"before": before, "after": after, "same": link is PeerLink}))
"""


def run_python(code: str) -> Any:
    """Run ``code`` in a fresh interpreter on this checkout; return what it printed, as JSON."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_server_imports_neither_the_client_nor_aiortc() -> None:
    result = run_python(_IMPORT_THE_SERVER)
    walked = set(result["walked"])
    assert {"hub.app", "hub.cli", "hub.server", "rooms.feature", "signalling.feature"} <= walked
    assert result["loaded"] == []
    assert result["media"] == []  # the embedded SFU: aiortc, never the client


def test_the_client_loads_aiortc_only_for_its_rtc_names() -> None:
    assert run_python(_IMPORT_THE_CLIENT) == {"before": False, "after": True, "same": True}


def test_the_package_exports_the_public_names_of_both_modules() -> None:
    assert sorted(livehub_client.__all__) == sorted([*connection.__all__, *rtc.__all__])
    for name in livehub_client.__all__:
        assert getattr(livehub_client, name) is getattr(
            rtc if name in rtc.__all__ else connection, name
        )
