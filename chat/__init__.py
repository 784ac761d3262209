"""The conversation around a session: chat with moderation, direct messages, and Q&A."""

from __future__ import annotations

from hub.dispatch import CommandRegistry
from hub.node import Node
from rooms.feature import RoomsFeature


def install(node: Node, registry: CommandRegistry, rooms: RoomsFeature) -> None:
    """Register the chat, direct-message and Q&A ops on ``registry``."""
    from chat.dm import DirectMessages
    from chat.messages import ChatFeature
    from chat.qa import QaFeature

    ChatFeature(node, rooms).install(registry)
    DirectMessages(node).install(registry)
    QaFeature(node, rooms).install(registry)
