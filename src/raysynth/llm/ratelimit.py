"""One rate limiter per endpoint, shared by every actor that calls it.

API limits are per endpoint (requests and tokens per minute), not per caller, so the buckets
live in one Ray actor that every HTTP actor of the job asks before each call. The actor never
blocks: `reserve` takes the request from the buckets at once, letting them go into debt, and
answers how long the caller must wait for its turn, so grants are spaced at the configured
rate in arrival order and a call costs one round trip. A token estimate is reserved before the
call and corrected with the usage the endpoint reports after it (`settle`).

A 429 with Retry-After pauses the endpoint for everyone (`pause`): reservations made later
wait for the pause to end, and callers already waiting for an earlier turn ask again
(`remaining`) and find their turn moved back by the pause.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Pauses older than this are forgotten: no reservation waits that long.
PAUSE_MEMORY_S = 3600.0

Ticket = tuple[float, float]  # (issued at, turn at), on the limiter's clock


@dataclass
class _Bucket:
    """A token bucket that may go into debt: a withdrawal never fails, it says how long until
    the bucket is back to zero, which is when the withdrawal is covered."""

    rate: float  # units per second
    capacity: float
    level: float
    updated: float

    def take(self, amount: float, now: float) -> float:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now
        self.level -= amount
        return max(0.0, -self.level / self.rate)

    def give_back(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)


def _bucket(per_minute: float | None, burst_seconds: float, now: float) -> _Bucket | None:
    if per_minute is None:
        return None
    rate = per_minute / 60.0
    capacity = max(1.0, rate * burst_seconds)
    return _Bucket(rate=rate, capacity=capacity, level=capacity, updated=now)


@dataclass
class EndpointLimiter:
    """The buckets and pauses of one endpoint. A plain class (tested directly); `limiter_actor`
    runs it as the job-wide Ray actor. Times are seconds on this object's own clock."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    burst_seconds: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _requests: _Bucket | None = field(init=False)
    _tokens: _Bucket | None = field(init=False)
    _paused_until: float = field(init=False, default=float("-inf"))
    _pauses: list[tuple[float, float]] = field(init=False, default_factory=list)
    _granted: int = field(init=False, default=0)
    _turns: tuple[float, float] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        now = self.clock()
        self._requests = _bucket(self.requests_per_minute, self.burst_seconds, now)
        self._tokens = _bucket(self.tokens_per_minute, self.burst_seconds, now)

    def reserve(self, tokens: int) -> tuple[float, Ticket]:
        """Take one request and `tokens` tokens; return (seconds to wait, ticket)."""
        now = self.clock()
        wait = max(0.0, self._paused_until - now)
        for bucket, amount in ((self._requests, 1), (self._tokens, tokens)):
            if bucket is not None:
                wait = max(wait, bucket.take(amount, now))
        turn = now + wait
        self._granted += 1
        first = turn if self._turns is None else self._turns[0]
        self._turns = (first, max(turn, self._turns[1] if self._turns else turn))
        return wait, (now, turn)

    def remaining(self, ticket: Ticket) -> float:
        """Seconds still to wait for `ticket`'s turn, moved back by every pause that started
        after the ticket was issued and before its turn."""
        issued, turn = ticket
        for start, extension in self._pauses:
            if issued < start <= turn:
                turn += extension
        return max(0.0, turn - self.clock())

    def settle(self, reserved: int, used: int) -> None:
        """Correct a token reservation with the usage the endpoint reported."""
        if self._tokens is not None:
            self._tokens.give_back(reserved - used)

    def pause(self, seconds: float) -> None:
        """Stop every caller for `seconds` (a 429's Retry-After). The buckets are charged for
        the pause, so the rate they refilled meanwhile is not spent in a burst after it."""
        now = self.clock()
        until = now + seconds
        extension = until - max(self._paused_until, now)
        if extension <= 0:
            return
        self._paused_until = until
        self._pauses = [p for p in self._pauses if p[0] > now - PAUSE_MEMORY_S]
        self._pauses.append((now, extension))
        for bucket in (self._requests, self._tokens):
            if bucket is not None:
                bucket.level -= bucket.rate * extension

    def stats(self) -> dict[str, float]:
        """Grants so far and the span of their turns: what the achieved rate is computed from."""
        span = self._turns[1] - self._turns[0] if self._turns else 0.0
        burst = self._requests.capacity if self._requests else 0.0
        return {"granted": self._granted, "span_s": span, "request_burst": burst}


def limiter_name(base_url: str) -> str:
    """The Ray actor name of an endpoint's limiter: one per endpoint per job."""
    return "raysynth-limiter-" + hashlib.sha256(base_url.encode()).hexdigest()[:16]


def limiter_actor(
    base_url: str,
    requests_per_minute: float | None,
    tokens_per_minute: float | None,
    burst_seconds: float,
) -> Any:
    """The endpoint's limiter actor, created if this job has none yet (the first caller's
    limits win). It needs no CPU: it only does arithmetic."""
    import ray

    # Restarted and its calls retried after a node loss: a call that failed instead would
    # turn a row into an error although the endpoint never saw it.
    actor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(EndpointLimiter)
    return actor.options(name=limiter_name(base_url), get_if_exists=True).remote(
        requests_per_minute, tokens_per_minute, burst_seconds
    )


async def wait_turn(limiter: Any, tokens: int) -> None:
    """Reserve at the limiter actor and sleep until the turn comes, pauses included."""
    wait, ticket = await limiter.reserve.remote(tokens)
    while wait > 0:
        await asyncio.sleep(wait)
        wait = await limiter.remaining.remote(ticket)
