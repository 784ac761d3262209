"""The match queue's pairing rules, as pure functions: who meets whom in one round.

A round looks at the people waiting (oldest first) and makes groups of two, or of three when
one person is left over:

* **Oldest first.** People are served in the order they joined; each takes, among those still
  free, the partner with the most interests in common (ties: the one who waited longest).
* **Never twice.** Two people who met once in the event are never put together again.
* **The odd one out.** When one person is left without a partner, the round's last pair that
  person may join (has met neither) waits with them, so that the next person to arrive makes
  two pairs; once the odd person has waited :data:`TRIPLE_AFTER` seconds, they join that pair
  as a third instead. Someone who has met everyone waiting just waits.

The rules read no clock and no store: the caller passes the time and what it knows of who met
whom, and claims the groups it gets (see :mod:`networking.match_feature`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from hub import fields
from networking.profiles import MAX_INTEREST  # one length for an interest, wherever it is given

# Seconds an odd person waits for a partner before they make a group of three.
TRIPLE_AFTER: Final = 2.0
# The partners one person's search looks at (the oldest free ones): a round stays linear in
# the queue's length however long it is.
MAX_SCAN: Final = 300
MAX_INTERESTS: Final = 10

Group = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Waiting:
    """One person in the queue: their user id, when they joined (seconds, any clock the caller
    uses throughout) and their interests (normalised, see :func:`parse_interests`)."""

    user: str
    since: float
    interests: frozenset[str] = frozenset()


def parse_interests(value: object) -> list[str]:
    """A ``match.join``'s ``interests``: absent (None) or a list of at most
    :data:`MAX_INTERESTS` one-line strings of at most :data:`MAX_INTEREST` characters each,
    kept lower-cased, trimmed, without repeats, in the given order; else ``bad_request``."""
    if value is None:
        return []
    raw = fields.items(value, "interests", 0, MAX_INTERESTS)
    kept: list[str] = []
    for index, item in enumerate(raw):
        interest = fields.line(item, f"interests[{index}]", MAX_INTEREST).casefold()
        if interest not in kept:
            kept.append(interest)
    return kept


def may_meet(a: str, b: str, met: Mapping[str, Collection[str]]) -> bool:
    """Whether ``a`` and ``b`` may be put together: different people who never met (``met``
    maps a user to those they met; either side's entry counts)."""
    return a != b and b not in met.get(a, ()) and a not in met.get(b, ())


def plan_round(
    waiting: Sequence[Waiting],
    met: Mapping[str, Collection[str]],
    now: float,
    triple_after: float = TRIPLE_AFTER,
) -> list[Group]:
    """The groups of one round (see the module docstring), each a tuple of user ids, oldest
    member first; nobody is in two groups and every group is of people who may meet. Who is in
    no group waits for a later round."""
    queue = sorted(waiting, key=lambda person: (person.since, person.user))
    free: dict[str, Waiting] = {person.user: person for person in queue}
    pairs: list[Group] = []
    odd: list[Waiting] = []
    for person in queue:
        if person.user not in free:
            continue
        del free[person.user]
        partner = _best_partner(person, free.values(), met)
        if partner is None:
            odd.append(person)
            continue
        del free[partner.user]
        pairs.append((person.user, partner.user))
    if len(odd) == 1 and pairs:
        _place_odd(odd[0], pairs, met, now, triple_after)
    return pairs


def _best_partner(
    person: Waiting, free: Collection[Waiting], met: Mapping[str, Collection[str]]
) -> Waiting | None:
    best: Waiting | None = None
    best_shared = -1
    for scanned, other in enumerate(free):
        if scanned >= MAX_SCAN:
            break
        if not may_meet(person.user, other.user, met):
            continue
        shared = len(person.interests & other.interests)
        # Candidates come oldest first: a later one wins only with more in common.
        if shared > best_shared:
            best, best_shared = other, shared
            if not person.interests:
                break
    return best


def _place_odd(
    person: Waiting,
    pairs: list[Group],
    met: Mapping[str, Collection[str]],
    now: float,
    triple_after: float,
) -> None:
    """Make the odd ``person`` a third of the newest pair they may join once they waited long
    enough, else hold that pair back for a round (``pairs`` is changed in place)."""
    for index in range(len(pairs) - 1, -1, -1):
        pair = pairs[index]
        if all(may_meet(person.user, member, met) for member in pair):
            if now - person.since >= triple_after:
                pairs[index] = (*pair, person.user)
            else:
                del pairs[index]
            return
