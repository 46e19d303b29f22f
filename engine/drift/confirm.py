"""Keep only the drift the API server itself would see.

Used by the controller's drift engine (`engine.controller.drifts`) after
the cheap pure `engine.drift.diff` has found candidates. Pure: the caller
does the server-side-apply dry run and hands its result in.

The pure diff compares the desired object as rendered with the live one, so
it reports fields the API server drops (`env[].value: ""`, `hostIPC: false`,
`initialDelaySeconds: 0`), prunes (fields a CRD's schema does not know) or
rewrites. A dry run of the desired object returns the live object with the
desired fields applied exactly as the server would keep them; a candidate
path is drift only if that result still differs from live there. A desired
value the server drops leaves nothing at its path, so a live value there
(someone set `hostIPC: true`) is still drift and an absent one is not.

When the dry run cannot be made, `without_dropped_zeroes` is the fallback:
for built-in kinds a desired zero value that live lacks is taken as dropped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from engine.drift import Change, DriftReport, compare, normalise, parse_pointer, report_of
from engine.drift.paths import MISSING, Tokens, resolve
from engine.drift.values import built_in, is_zero


def confirm(report: DriftReport, desired: Mapping[str, Any], server: Mapping[str, Any],
            live: Mapping[str, Any]) -> DriftReport:
    """The changes of `report` that `server` (the dry-run result) still shows against `live`.

    `report` is `diff(desired, live)`; its paths index `desired`. A deleted
    object stays deleted: there is nothing to dry-run against.
    """
    if report.deleted or not report.drifted:
        return report
    want, have, kept = normalise(desired), normalise(live), normalise(server)
    confirmed: list[Change] = []
    for change in report.changes:
        tokens = parse_pointer(change.path)
        if _differs(resolve(want, kept, tokens), resolve(want, have, tokens), tokens):
            confirmed.append(change)
    return report_of(confirmed)


def without_dropped_zeroes(report: DriftReport, api_version: str) -> DriftReport:
    """`report` minus desired zero values ("", 0, false) that a built-in kind's live object lacks.

    A guess, for when the server cannot be asked: Go's `omitempty` drops
    those, but a pointer field keeps its zero, so a hand-removed
    `allowPrivilegeEscalation: false` would be missed here.
    """
    if report.deleted or not built_in(api_version):
        return report
    return report_of([c for c in report.changes if not (c.live is None and is_zero(c.desired))])


def fingerprint(desired: Mapping[str, Any], live: Mapping[str, Any]) -> str:
    """Identifies a (desired, live) pair up to what the server changes on every write.

    Equal fingerprints give equal confirmations, so a dry run is not repeated
    for an object whose status alone changed. Only a digest is kept: the
    objects may be Secrets.
    """
    text = json.dumps([normalise(desired), normalise(live)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _absent(value: Any) -> bool:
    return value is MISSING or value is None or (isinstance(value, Mapping | list) and not value)


def _differs(kept: Any, live: Any, tokens: Tokens) -> bool:
    if _absent(kept):
        return not _absent(live)
    return bool(compare(kept, live, tokens))
