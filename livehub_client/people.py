"""The people directory from Python: every profile a search matches, page after page::

    async for profile in search_directory(client, interest="Energy", country="DE"):
        print(profile["name"], profile["organisation"])

``directory.search`` answers pages of at most 50 profiles with a ``next`` cursor; this follows
the cursors until the last page. The other profile ops are plain requests
(``client.request("profile.set", listed=True, ...)``; see ``docs/protocol.md``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final, Protocol

PAGE: Final = 50


class Requester(Protocol):
    """What the helpers need of a client (a :class:`~livehub_client.HubClient`)."""

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a command and return its reply's ``ok`` map (raising on an error reply)."""


async def search_directory(client: Requester, **filters: Any) -> AsyncIterator[dict[str, Any]]:
    """Each profile that ``directory.search`` with ``filters`` (``q``, ``organisation``,
    ``country``, ``interest``) finds, in the directory's order, reading pages of
    :data:`PAGE` as it goes. A profile renamed while the pages are read may be missed, or
    come again at its new place."""
    after: str | None = None
    while True:
        page = await client.request("directory.search", **filters, limit=PAGE, after=after)
        for profile in page["profiles"]:
            yield profile
        after = page.get("next")
        if after is None:
            return
