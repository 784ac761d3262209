"""Lounge tables from Python: take a seat and enter the table's room in one step::

    seat = await sit_at(client, "coffee-1")   # table.sit, then join
    ...
    await client.leave("coffee-1")            # the seat is free again

The other commands are plain requests (``table.list``; see the protocol's "Lounge tables").
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["sit_at"]


class _Client(Protocol):
    async def request(self, op: str, **fields: Any) -> dict[str, Any]: ...

    async def join(self, room: str, **fields: Any) -> dict[str, Any]: ...


async def sit_at(client: _Client, table: str) -> dict[str, Any]:
    """Take a seat at ``table`` and join its room; returns the ``join`` reply. Raises the
    client's request error: ``conflict`` when the table is full, ``not_found`` for no such
    table, ``closed`` once the event is over, ``forbidden`` when the seat went before the join
    (sit again)."""
    await client.request("table.sit", table=table)
    return await client.join(table)
