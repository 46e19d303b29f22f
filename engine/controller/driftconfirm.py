"""Ask a workload cluster which candidate drift is real.

Used by the drift engine (`engine.controller.drifts`) after its pure diff
found candidates. For each candidate object it makes a server-side-apply dry
run of what a correction would apply (`Workload.would_keep`, `dryRun=All`,
so nothing is ever written) and keeps only the paths where the server's
result still differs from live (`drift.confirm`). Answers are remembered
per (desired, live) fingerprint, so an object whose status alone changed
costs no second dry run. A dry run that fails (webhook down, kind not
served, cluster unreachable) leaves the pure result, minus zero values the
server most likely dropped, marked unconfirmed: reported, not corrected.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from engine import drift, errors, inventory
from engine.adapters import connections, watches
from engine.drift import confirm

DRY_RUNS = Counter("flotilla_drift_dry_runs_total",
                   "Server-side dry runs of candidate drift, by result "
                   "(confirmed, cleared: the server would keep what is live, failed).",
                   ["cluster", "profile", "result"])

log = logging.getLogger("flotilla.drift")

SummaryKey = tuple[str, str]


@dataclass(frozen=True)
class Candidate:
    """An object the pure diff found drifted, before the server is asked."""

    item: inventory.DesiredItem
    key: watches.ObjKey
    expected: dict[str, Any]  # what the diff compared with live
    sent: dict[str, Any]  # what a correction would apply, and so what the dry run sends
    live: dict[str, Any] | None
    report: drift.DriftReport


@dataclass(frozen=True)
class Found:
    """A drifted object; `confirmed` is False when the dry run failed and the pure guess stands."""

    item: inventory.DesiredItem
    key: watches.ObjKey
    report: drift.DriftReport
    confirmed: bool = True


class Confirmer:
    """Dry runs for the drift engine, with their answers remembered per summary."""

    def __init__(self) -> None:
        # summary → {object: (fingerprint of desired and live, confirmed report)}
        self._memo: dict[SummaryKey, dict[watches.ObjKey, tuple[str, drift.DriftReport]]] = {}

    def forget(self, skey: SummaryKey) -> None:
        self._memo.pop(skey, None)

    async def confirm(self, skey: SummaryKey, candidates: list[Candidate],
                      conn: connections.Connection | None, labels: dict[str, str],
                      ) -> list[Found]:
        """The candidates the server confirms (or, failing that, the pure guess keeps)."""
        memo = self._memo.setdefault(skey, {})
        for stale in memo.keys() - {c.key for c in candidates}:
            del memo[stale]

        async def one(c: Candidate) -> Found | None:
            if c.live is None:
                return Found(c.item, c.key, c.report)  # deleted: nothing to ask about
            stamp = confirm.fingerprint(c.expected, c.live)
            known = memo.get(c.key)
            if known is not None and known[0] == stamp:
                report = known[1]
            else:
                try:
                    if conn is None:
                        raise errors.RetriableError("no connection", reason="Unreachable")
                    server = await conn.workload.would_keep(c.sent)
                except (errors.FlotillaError, ValueError) as exc:
                    # Only the status and reason are logged: the message may quote a Secret.
                    DRY_RUNS.labels(**labels, result="failed").inc()
                    log.info("dry run of %s %s failed (%s %s); its drift stays unconfirmed",
                             c.key[1], "/".join(filter(None, c.key[2:])),
                             getattr(exc, "status", ""), getattr(exc, "reason", type(exc).__name__))
                    guess = confirm.without_dropped_zeroes(c.report, c.key[0])
                    return Found(c.item, c.key, guess, confirmed=False) if guess.drifted else None
                if _version(server) != _version(c.live):
                    # The watch cache is behind the server (a deploy just wrote the object):
                    # judge nothing now; the watch event for the newer object brings a check.
                    return None
                report = confirm.confirm(c.report, c.expected, server, c.live)
                memo[c.key] = (stamp, report)
                DRY_RUNS.labels(**labels, result="confirmed" if report.drifted else "cleared").inc()
            return Found(c.item, c.key, report) if report.drifted else None

        answers = await asyncio.gather(*(one(c) for c in candidates))
        return [f for f in answers if f is not None]


def _version(obj: dict[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion", ""))
