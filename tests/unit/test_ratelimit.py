"""Token buckets, the keyed limiter and the flood guard (hub.ratelimit), on an injected clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hub.ratelimit import FloodGuard, KeyedLimiter, TokenBucket

# -- TokenBucket --------------------------------------------------------------------------------


def test_bucket_starts_full_then_refuses_after_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=3.0)
    assert bucket.tokens == 3.0
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(100.0) is False


def test_bucket_refills_over_injected_time() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0)
    for _ in range(3):
        assert bucket.take(0.0)
    assert not bucket.take(0.4)  # 0.8 tokens
    assert bucket.take(0.5)  # 1.0 tokens
    assert not bucket.take(0.5)


def test_bucket_refill_is_capped_at_burst() -> None:
    bucket = TokenBucket(rate=5.0, burst=2.0)
    assert bucket.take(0.0)
    assert bucket.take(0.0)
    assert [bucket.take(1000.0) for _ in range(3)] == [True, True, False]


def test_bucket_refusal_takes_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0)
    assert bucket.take(0.0, cost=1.5)
    assert not bucket.take(0.0, cost=1.0)
    assert bucket.take(0.0, cost=0.5)


def test_bucket_cost_above_burst_is_always_refused() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0)
    assert not bucket.take(0.0, cost=2.5)
    assert bucket.retry_after(0.0, cost=2.5) == math.inf
    assert bucket.take(0.0, cost=2.0)


def test_bucket_may_start_empty() -> None:
    bucket = TokenBucket(rate=1.0, burst=5.0, tokens=0.0)
    assert not bucket.take(10.0)  # the first take only sets the clock
    assert bucket.take(11.0)


def test_retry_after() -> None:
    bucket = TokenBucket(rate=2.0, burst=2.0)
    assert bucket.retry_after(0.0) == 0.0
    assert bucket.take(0.0)
    assert bucket.take(0.0)
    assert bucket.retry_after(0.0) == pytest.approx(0.5)
    assert bucket.retry_after(0.25) == pytest.approx(0.25)
    assert bucket.retry_after(0.0, cost=2.0) == pytest.approx(1.0)
    assert bucket.retry_after(0.5) == 0.0
    assert bucket.tokens == 0.0  # retry_after changes nothing
    assert bucket.take(0.5)


def test_retry_after_is_enough_despite_float_rounding() -> None:
    bucket = TokenBucket(rate=10.0, burst=1.0)
    now = 0.1
    for _ in range(1000):
        assert bucket.take(now)
        wait = bucket.retry_after(now)
        assert 0 < wait <= 0.1 + 1e-9
        now += wait
    assert bucket.take(now)
    assert not bucket.take(now)


def test_retry_after_never_with_zero_rate() -> None:
    bucket = TokenBucket(rate=0.0, burst=1.0)
    assert bucket.take(0.0)
    assert bucket.retry_after(1e9) == math.inf
    assert not bucket.take(1e9)


def test_clock_going_backwards_refills_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0)
    assert bucket.take(10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)
    assert bucket.updated == 10.0  # not moved back, so the same second is not refilled twice
    assert bucket.retry_after(5.0) == pytest.approx(6.0)
    assert not bucket.take(10.5)
    assert bucket.take(11.0)
    assert not bucket.take(11.0)


@pytest.mark.parametrize(
    ("rate", "burst"), [(-1.0, 1.0), (math.nan, 1.0), (math.inf, 1.0), (1.0, 0.0), (1.0, -1.0)]
)
def test_bucket_rejects_bad_parameters(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)
    with pytest.raises(ValueError):
        KeyedLimiter(rate=rate, burst=burst)


def test_bucket_rejects_bad_tokens_and_cost() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=1.0, burst=1.0, tokens=2.0)
    with pytest.raises(ValueError):
        TokenBucket(rate=1.0, burst=1.0).take(0.0, cost=-1.0)


@settings(database=None, max_examples=300)
@given(
    rate=st.floats(min_value=0.0, max_value=100.0),
    burst=st.floats(min_value=0.5, max_value=50.0),
    steps=st.lists(st.floats(min_value=0.0, max_value=5.0), max_size=200),
)
def test_accepted_never_exceeds_burst_plus_rate_times_elapsed(
    rate: float, burst: float, steps: list[float]
) -> None:
    bucket = TokenBucket(rate=rate, burst=burst)
    start = now = 1000.0
    accepted = 0
    for dt in steps:
        now += dt
        accepted += bucket.take(now)
        # slack: float rounding, and the 1e-9 the bucket forgives per take
        assert accepted <= burst + rate * (now - start) + 1e-6


@settings(database=None, max_examples=300)
@given(
    rate=st.floats(min_value=0.01, max_value=100.0),
    burst=st.floats(min_value=0.5, max_value=50.0),
    steps=st.lists(
        st.tuples(st.floats(min_value=-1.0, max_value=5.0), st.floats(0.0, 3.0)), max_size=100
    ),
)
# Found once in a run: a tiny take, then the whole burst, which rounding made take grant while
# retry_after said to wait.
@example(rate=1.0, burst=2.0, steps=[(0.0, 1e-09), (0.0, 2.0)])
def test_take_succeeds_exactly_when_retry_after_is_zero(
    rate: float, burst: float, steps: list[tuple[float, float]]
) -> None:
    bucket = TokenBucket(rate=rate, burst=burst)
    now = 1000.0
    for dt, cost in steps:
        now += dt  # negative steps too: a clock that jumps back
        ready = bucket.retry_after(now, cost) == 0.0
        assert bucket.take(now, cost) == ready


# -- KeyedLimiter -------------------------------------------------------------------------------


def test_keyed_limiter_keeps_keys_apart() -> None:
    limiter = KeyedLimiter(rate=1.0, burst=2.0)
    assert limiter.take("alice", 0.0)
    assert limiter.take("alice", 0.0)
    assert not limiter.take("alice", 0.0)
    assert limiter.take("bob", 0.0)
    assert limiter.retry_after("alice", 0.0) == pytest.approx(1.0)
    assert limiter.retry_after("bob", 0.0) == 0.0
    assert limiter.retry_after("carol", 0.0) == 0.0
    assert len(limiter) == 2  # retry_after made no bucket
    assert limiter.take("alice", 1.0)


def test_keyed_limiter_drops_the_least_recently_used() -> None:
    limiter = KeyedLimiter(rate=1.0, burst=1.0, max_keys=3)
    for key in "abc":
        assert limiter.take(key, 0.0)
    assert len(limiter) == 3
    assert not limiter.take("a", 0.0)  # "a" is now the most recent; "b" the least
    assert limiter.take("d", 0.0)
    assert len(limiter) == 3
    assert limiter.take("b", 0.0)  # dropped, so back with a full bucket; "c" goes now
    assert len(limiter) == 3
    assert not limiter.take("a", 0.0)  # kept, still empty
    assert not limiter.take("d", 0.0)
    assert limiter.take("c", 0.0)


def test_keyed_limiter_stays_bounded() -> None:
    limiter = KeyedLimiter(rate=1.0, burst=1.0, max_keys=3)
    for i in range(1000):
        limiter.take(f"user-{i}", 0.0)  # no bucket refills: only max_keys bounds them
        assert len(limiter) <= 3
    assert len(limiter) == 3


def test_keyed_limiter_lets_go_of_buckets_that_refilled() -> None:
    limiter = KeyedLimiter(rate=1.0, burst=2.0)
    for i in range(10_000):
        assert limiter.take(f"guest-{i}", i * 0.5)  # each left alone for a refill (2 s) goes
    assert len(limiter) <= 5  # the keys of the last refill time
    # A bucket not yet full again is kept: its key still gets only what is left.
    limiter = KeyedLimiter(rate=1.0, burst=2.0)
    assert limiter.take("a", 0.0) and limiter.take("a", 0.0)
    assert limiter.take("b", 1.0) and limiter.take("c", 1.0)
    assert len(limiter) == 3
    assert limiter.take("a", 1.0)
    assert not limiter.take("a", 1.0)
    # Once full, it goes when new keys come, and its key starts afresh.
    for key in ("d", "e"):
        assert limiter.take(key, 5.0)
    assert len(limiter) <= 3


def test_a_key_in_use_keeps_its_bucket_while_others_come_and_go() -> None:
    limiter = KeyedLimiter(rate=10.0, burst=20.0)  # a refill takes 2 s
    limiter.take("voter", 0.0)
    bucket = limiter._buckets["voter"]
    for i in range(1, 1_000):
        now = i * 0.1
        assert limiter.take("voter", now)  # within its rate: its bucket stays full
        assert limiter.take(f"guest-{i}", now)
    assert limiter._buckets["voter"] is bucket  # never dropped and made again
    assert len(limiter) <= 22


def test_keyed_limiter_needs_a_key() -> None:
    with pytest.raises(ValueError):
        KeyedLimiter(rate=1.0, burst=1.0, max_keys=0)


# -- FloodGuard ---------------------------------------------------------------------------------


def test_flood_guard_trips_after_more_than_max_rejections() -> None:
    guard = FloodGuard()
    assert [guard.rejected(0.01 * i) for i in range(20)] == [False] * 20
    assert guard.rejected(0.2)


def test_flood_guard_threshold_is_configurable() -> None:
    guard = FloodGuard(max_rejections=3, window=1.0)
    assert [guard.rejected(0.0) for _ in range(4)] == [False, False, False, True]
    assert FloodGuard(max_rejections=0).rejected(0.0)


def test_flood_guard_window_expires() -> None:
    guard = FloodGuard(max_rejections=2, window=10.0)
    assert not guard.rejected(0.0)
    assert not guard.rejected(1.0)
    assert not guard.rejected(10.0)  # the one at 0.0 is a full window old: forgotten
    assert guard.rejected(10.5)  # 1.0, 10.0, 10.5 within 10 s


def test_flood_guard_spread_out_rejections_never_trip() -> None:
    guard = FloodGuard(max_rejections=20, window=10.0)
    # 20 per 10 s, forever: at the threshold, never over it
    assert not any(guard.rejected(0.5 * i) for i in range(10_000))


def test_flood_guard_stays_bounded() -> None:
    guard = FloodGuard(max_rejections=5, window=1e6)
    for i in range(1000):
        guard.rejected(float(i))
    assert len(guard._times) == 6


@pytest.mark.parametrize(("max_rejections", "window"), [(-1, 10.0), (5, 0.0), (5, math.nan)])
def test_flood_guard_rejects_bad_parameters(max_rejections: int, window: float) -> None:
    with pytest.raises(ValueError):
        FloodGuard(max_rejections, window)
