"""When to try a failed deployment again, and when to stop trying.

Used by the summary reconciler for each deployed item (a release or a
manifest) and for whole-summary failures. Sveltos's rule: after
`maxConsecutiveFailures` failures of the same input in a row (default 5) an
item is FailedNonRetriable until its input changes or someone asks for a
retry. Between attempts the wait grows exponentially from 1 s to 5 min,
with jitter so a fleet that failed together does not retry in lockstep, and
never shorter than the delay the error itself asked for.

Pure: numbers in, numbers out (the jitter takes its random source as an
argument, so tests are reproducible).
"""

from __future__ import annotations

import random
from collections.abc import Callable

BASE = 1.0
CAP = 300.0
JITTER = 0.2  # ±20 %
MAX_CONSECUTIVE_FAILURES = 5


def delay(failures: int, *, asked: float = 0.0, base: float = BASE, cap: float = CAP,
          jitter: float = JITTER, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after the `failures`-th consecutive failure (1 = the first)."""
    exponent = max(failures - 1, 0)
    # Capped before exponentiation would overflow for absurd counts.
    raw = cap if exponent >= 32 else min(base * (2.0 ** exponent), cap)
    spread = raw * jitter * (2.0 * rand() - 1.0)
    return max(min(raw + spread, cap), asked, 0.0)


def gives_up(failures: int, limit: int = MAX_CONSECUTIVE_FAILURES) -> bool:
    """Whether this many consecutive failures make the item non-retriable (limit 0: never)."""
    return limit > 0 and failures >= limit
