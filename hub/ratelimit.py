"""Rate limits: token buckets, a bounded set of them keyed by user, and the flood guard.

Pure and clock-free: every call takes ``now`` in seconds from one monotonic clock of the
caller's choice (``time.monotonic()`` in the hub), so tests step time by hand.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass

# Refill arithmetic in floats can land a hair under a whole token (0.1 * 10 summed in steps);
# without slack, a client told to retry after t seconds could be refused again at exactly t.
_SLACK = 1e-9


@dataclass(slots=True)
class TokenBucket:
    """rate tokens per second, at most burst; starts full.

    :meth:`take` never grants more than ``burst + rate * elapsed`` in total (up to float slack),
    and :meth:`retry_after` says how long until a ``take`` of the same cost would succeed.
    A clock that goes backwards refills nothing (and does not move ``updated`` back).
    """

    rate: float
    burst: float
    tokens: float = math.nan  # NaN: not given, start full (set to ``burst``)
    updated: float = math.nan  # NaN: no take yet, set by the first one

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate >= 0):
            raise ValueError(f"rate must be a finite number >= 0, not {self.rate!r}")
        if not (math.isfinite(self.burst) and self.burst > 0):
            raise ValueError(f"burst must be a finite number > 0, not {self.burst!r}")
        if math.isnan(self.tokens):
            self.tokens = self.burst
        elif not 0 <= self.tokens <= self.burst:
            raise ValueError(f"tokens must be between 0 and burst, not {self.tokens!r}")

    def _available(self, now: float) -> float:
        if math.isnan(self.updated) or now <= self.updated:
            return self.tokens
        return min(self.burst, self.tokens + (now - self.updated) * self.rate)

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Refill for the time since the last call, then take ``cost`` tokens if there are enough.

        Returns whether they were taken; a refusal takes nothing. A ``cost`` above ``burst``
        is always refused.
        """
        if cost < 0:
            raise ValueError(f"cost must be >= 0, not {cost!r}")
        self.tokens = self._available(now)
        if math.isnan(self.updated) or now > self.updated:
            self.updated = now
        if cost <= self.burst and self.tokens + _SLACK >= cost:
            self.tokens = max(0.0, self.tokens - cost)
            return True
        return False

    def retry_after(self, now: float, cost: float = 1.0) -> float:
        """Seconds from ``now`` until ``cost`` tokens are available: 0.0 if they are already.

        ``math.inf`` if they never will be (``cost`` above ``burst``, or ``rate`` 0).
        Changes nothing.
        """
        if cost > self.burst:
            return math.inf
        available = self._available(now)
        # The very test take() makes (not cost - available <= slack, which rounds otherwise).
        if available + _SLACK >= cost:
            return 0.0
        missing = cost - available
        if self.rate == 0:
            return math.inf
        # after a clock step backwards, refill resumes only once `now` is past `updated` again
        behind = 0.0 if math.isnan(self.updated) else max(0.0, self.updated - now)
        return behind + missing / self.rate


class KeyedLimiter:
    """One TokenBucket per key (e.g. per user id on this node), bounded: at most max_keys buckets;
    when full, the least recently used bucket is dropped (a dropped bucket was idle longest, so it
    would be nearly full anyway). Below that bound too, a new key drops up to two of the least
    recently used buckets that were left alone for a whole refill (``burst / rate`` seconds),
    so are full, as a fresh bucket is: the buckets held follow the keys active within about
    ``burst / rate`` seconds, not every key ever seen, and a key in use keeps its bucket.

    Each :meth:`take` is O(1). A key seen for the first time, or again after being dropped,
    gets a full bucket.
    """

    __slots__ = ("_buckets", "_refill", "burst", "max_keys", "rate")

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        """Buckets of ``rate`` tokens a second, at most ``burst``, for up to ``max_keys`` keys."""
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, not {max_keys!r}")
        TokenBucket(rate, burst)  # validates rate and burst now rather than at the first take
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        # Seconds an empty bucket takes to fill: how long a bucket must be left alone to go.
        self._refill = burst / rate if rate > 0 else math.inf

    def take(self, key: str, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` from ``key``'s bucket as :meth:`TokenBucket.take` does; marks it recent."""
        bucket = self._buckets.get(key)
        if bucket is None:
            self._drop_refilled(now)
            if len(self._buckets) >= self.max_keys:
                self._buckets.popitem(last=False)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now, cost)

    def _drop_refilled(self, now: float) -> None:
        # Two per new key: the held buckets shrink back to the active keys however many came.
        # Only a bucket left alone for a whole refill goes: one in use, even full (a voter well
        # within the rate), would be dropped and made again at every command of its key.
        buckets = self._buckets
        for _ in range(2):
            if not buckets:
                return
            oldest = next(iter(buckets.values()))
            if oldest.retry_after(now, oldest.burst) > 0 or now - oldest.updated < self._refill:
                return
            buckets.popitem(last=False)

    def retry_after(self, key: str, now: float, cost: float = 1.0) -> float:
        """Seconds until ``key`` could take ``cost``, as :meth:`TokenBucket.retry_after`.

        Changes nothing, not even recency.
        """
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst)
        return bucket.retry_after(now, cost)

    def __len__(self) -> int:
        """The number of buckets held: never more than ``max_keys``."""
        return len(self._buckets)


class FloodGuard:
    """Counts rate_limited replies on one connection; a connection that keeps flooding after them
    is closed with 4029.

    :meth:`rejected` returns True when the connection has been rejected more than
    ``max_rejections`` times within ``window`` seconds (defaults 20 within 10 s). Nothing
    resets the count but time: a flooder interleaving allowed commands is still a flooder.
    Holds at most ``max_rejections + 1`` timestamps.
    """

    __slots__ = ("_times", "max_rejections", "window")

    def __init__(self, max_rejections: int = 20, window: float = 10.0) -> None:
        """Trip on rejection number ``max_rejections + 1`` within any ``window`` seconds."""
        if max_rejections < 0:
            raise ValueError(f"max_rejections must be >= 0, not {max_rejections!r}")
        if not (math.isfinite(window) and window > 0):
            raise ValueError(f"window must be a finite number > 0, not {window!r}")
        self.max_rejections = max_rejections
        self.window = window
        self._times: deque[float] = deque(maxlen=max_rejections + 1)

    def rejected(self, now: float) -> bool:
        """Record a rate_limited reply at ``now``; True if the connection should now be closed."""
        times = self._times
        times.append(now)
        while times and now - times[0] >= self.window:
            times.popleft()
        return len(times) > self.max_rejections
