"""Checks around a profile's work on one cluster: before deploying, before and after withdrawal.

Used by the ClusterSummary reconciler (`summaries`): `preDeployChecks` (Flotilla)
must pass before a deployment that changes anything on the cluster;
Sveltos' `preDeleteChecks` before a withdrawal removes anything (while one
fails, nothing is removed) and `postDeleteChecks` after it removed everything,
before the summary goes. Each is a list of health checks in Sveltos'
ValidateHealth shape, judged on the live workload cluster like validateHealths
(`deployers.base.check`); their featureID is ignored, since they run at one
moment rather than after a feature. The first check that fails holds the step
and says why; the reconciler looks again after its health poll interval.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.adapters import connections
from engine.deployers import base
from engine.model import types


async def first_failing(conn: connections.Connection, checks: Sequence[types.HealthCheck],
                        field: str) -> str:
    """"" when every check passes, else "<name>: <why>" of the first one that does not."""
    for index, check in enumerate(checks):
        verdict = await base.check(conn, check, None, f"{field}[{index}]")
        if not verdict.healthy:
            return f"{check.name}: {verdict.message}" if verdict.message else check.name
    return ""
