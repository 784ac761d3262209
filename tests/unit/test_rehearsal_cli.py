"""How ``hub rehearse`` runs (livehub_client.rehearsal.cli): no sockets."""

from __future__ import annotations

import pytest

from livehub_client.rehearsal.cli import loop_factory


def test_the_rehearsal_runs_on_uvloop_where_it_is_installed() -> None:
    # The time its loop takes to hand a frame to a client is recorded as the hub's latency.
    uvloop = pytest.importorskip("uvloop")
    assert loop_factory() is uvloop.new_event_loop
