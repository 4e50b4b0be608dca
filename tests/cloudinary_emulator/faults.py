"""Injectable failures: what a flaky network or an overloaded Cloudinary does to a client."""

from __future__ import annotations

import enum
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field


class EndpointKind(enum.StrEnum):
    UPLOAD = "upload"
    ADMIN = "admin"
    DELIVERY = "delivery"
    DOWNLOAD = "download"


class FaultKind(enum.StrEnum):
    HTTP_500 = "http_500"
    HTTP_502 = "http_502"
    HTTP_503 = "http_503"
    HTTP_420 = "http_420"
    HTTP_429 = "http_429"
    CONNECTION_RESET = "connection_reset"
    SLOW = "slow"
    TRUNCATED_BODY = "truncated_body"

    @property
    def http_status(self) -> int | None:
        return int(self.value[5:]) if self.value.startswith("http_") else None


@dataclass
class FaultRule:
    """Fires on matching calls: with probability ``rate`` (seeded), on every ``every``-th matching call,
    and/or at most ``times`` times (``times`` alone: the next N matching calls)."""

    kind: FaultKind
    endpoints: frozenset[EndpointKind]
    rate: float | None = None
    every: int | None = None
    times: int | None = None
    delay_seconds: float = 1.0
    seed: int = 0
    fired: int = 0
    matched: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def consider(self, endpoint: EndpointKind) -> bool:
        if endpoint not in self.endpoints or self.exhausted():
            return False
        self.matched += 1
        if self.every is not None and self.matched % self.every != 0:
            return False
        if self.rate is not None and self._random.random() >= self.rate:
            return False
        self.fired += 1
        return True


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(
        self,
        kind: FaultKind | str,
        *,
        endpoints: Iterable[EndpointKind | str] | None = None,
        rate: float | None = None,
        every: int | None = None,
        times: int | None = None,
        delay_seconds: float = 1.0,
        seed: int = 0,
    ) -> FaultRule:
        if rate is None and every is None and times is None:
            times = 1
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], got {rate}")
        if every is not None and every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        chosen = (
            frozenset(EndpointKind(endpoint) for endpoint in endpoints)
            if endpoints
            else frozenset(EndpointKind)
        )
        rule = FaultRule(FaultKind(kind), chosen, rate, every, times, delay_seconds, seed)
        with self._lock:
            self._rules.append(rule)
        return rule

    def pick(self, endpoint: EndpointKind) -> FaultRule | None:
        """The first rule that fires for this call; every rule still counts the call it matched."""
        with self._lock:
            fired = [rule for rule in self._rules if rule.consider(endpoint)]
        return fired[0] if fired else None

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
