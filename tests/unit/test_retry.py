"""Backoff between attempts and the point where a failing item stops being retried."""

from __future__ import annotations

import pytest

from engine import retry


class TestDelay:
    """Exponential from 1 s, capped at 5 min, jittered, never below what the error asked."""

    @pytest.mark.parametrize(("failures", "expected"), [(1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0),
                                                        (10, 300.0), (10_000, 300.0)])
    def test_without_jitter(self, failures: int, expected: float) -> None:
        assert retry.delay(failures, rand=lambda: 0.5) == expected

    def test_jitter_stays_within_twenty_percent_and_under_the_cap(self) -> None:
        assert retry.delay(4, rand=lambda: 0.0) == pytest.approx(8.0 * 0.8)
        assert retry.delay(4, rand=lambda: 1.0) == pytest.approx(8.0 * 1.2)
        assert retry.delay(50, rand=lambda: 1.0) == retry.CAP

    def test_the_errors_own_delay_is_a_floor(self) -> None:
        assert retry.delay(1, asked=10.0, rand=lambda: 0.5) == 10.0


class TestGivesUp:
    """Sveltos's rule: the fifth consecutive failure makes an item non-retriable."""

    def test_default_limit(self) -> None:
        assert [retry.gives_up(n) for n in range(1, 7)] == [False] * 4 + [True] * 2

    def test_zero_means_never(self) -> None:
        assert not retry.gives_up(1000, limit=0)
