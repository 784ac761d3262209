"""Placeholder: being written."""

from __future__ import annotations

from hub.dispatch import CommandRegistry
from hub.node import Node
from rooms.feature import RoomsFeature


class QaFeature:
    """Placeholder."""

    def __init__(self, node: Node, rooms: RoomsFeature) -> None:
        self.node = node

    def install(self, registry: CommandRegistry) -> None:
        """Register nothing yet."""
