"""Polls and elections: ``poll.create``, ``poll.vote``, ``poll.close``, ``poll.get``, the
``poll.tally`` event, timers and the organizers' export."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.dispatch import CommandRegistry
from hub.node import Node
from rooms.feature import RoomsFeature

if TYPE_CHECKING:
    from polls.feature import PollsFeature


def install(node: Node, registry: CommandRegistry, rooms: RoomsFeature) -> PollsFeature:
    """Register the poll ops on ``registry``; returns the feature (the HTTP export uses it)."""
    from polls.feature import PollsFeature

    feature = PollsFeature(node, rooms)
    feature.install(registry)
    return feature
