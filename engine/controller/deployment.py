"""One summary's deployment: its desired items carried out on its cluster, in dependency order.

Used by `summaries.reconcile`. Each item (a Helm release or a manifest)
goes to the deployer of its kind (`engine.deployers`) and becomes one
status row; a failure is a row with a message, not an aborted run.
`continueOnConflict` / `continueOnError` decide whether later items still go
ahead. An item whose dependencies are not healthy yet waits (Provisioning,
with the reason) and the summary is re-queued. Failed rows count their
consecutive failures of the same input; at `maxConsecutiveFailures` (default
5) the row is FailedNonRetriable until the input changes or a retry is requested.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import api, deployers, errors, health, inventory, retry
from engine.adapters import connections, helm, workload
from engine.catalog import ReleasePlan
from engine.controller import context, desired, jobchecks, reporting
from engine.deployers import base
from engine.model import limits, types
from engine.model.healthcheck import FeatureID
from engine.model.helmopts import HelmOptions

log = logging.getLogger("flotilla.controller")
# A service row keeps the head and tail of a long helm error; the summary stays small.
ROW_MESSAGE_LEN = 4096
WriteStatus = Callable[[dict[str, Any]], Awaitable[bool]]


@dataclass
class Result:
    services: list[dict[str, Any]] = field(default_factory=list)
    inventory: dict[inventory.Key, str] = field(default_factory=dict)
    healthy: bool = True
    phase: str = "Provisioned"
    reason: str = "Provisioned"
    message: str = ""
    requeue_after: float | None = None
    checks: list[health.HealthResult] = field(default_factory=list)  # validateHealths


# Which summary rows belong to each of Sveltos' features, for validateHealths[].featureID.
FEATURE_ROWS = {FeatureID.HELM: ("HelmRelease",), FeatureID.RESOURCES: ("Manifests",),
                FeatureID.KUSTOMIZE: ("Kustomize", "Kustomization")}


def _not_deployed(feature: FeatureID | None, rows: list[dict[str, Any]]) -> str:
    """The rows of `feature` not Provisioned yet, named; "" when all are (or it has none)."""
    kinds = FEATURE_ROWS.get(feature, ()) if feature else ()
    waiting = [r["name"] for r in rows if r.get("kind") in kinds
               and r.get("status") != "Provisioned"]
    more = f" and {len(waiting) - 3} more" if len(waiting) > 3 else ""
    return ", ".join(waiting[:3]) + more


class Deployment:
    """What one reconcile does for one (profile, cluster): apply, check health, or preview."""

    def __init__(self, ctx: context.Context, target: base.Target, summary: dict[str, Any],
                 want: desired.Desired, write_status: WriteStatus | None = None,
                 retry_now: bool = False) -> None:
        self.ctx, self.target, self.pspec = ctx, target, target.pspec
        self.summary, self.want = summary, want
        self.write_status = write_status  # for progress lines while helm runs
        # Someone asked for a retry (flotilla retry): failure counts start over and
        # FailedNonRetriable items are tried again.
        self.retry_now = retry_now
        status = summary.get("status") or {}
        self.old_rows = {r.get("name"): r for r in status.get("services") or []}
        self.recorded = [inventory.InventoryEntry.from_dict(r)
                         for r in status.get("inventory") or []]

    def _row(self, item: inventory.DesiredItem, state: str, message: str = "", *,
             healthy: bool | None = None, applied: bool = False, reason: str = "",
             ) -> dict[str, Any]:
        described = deployers.for_item(item).row(item)
        old = self.old_rows.get(described.name) or {}
        same_input = old.get("hash") == item.hash and not self.retry_now
        failures = int(old.get("consecutiveFailures", 0)) if same_input else 0
        if state in ("Failed", "FailedNonRetriable"):
            failures += 1
            limit = self.pspec.max_consecutive_failures or retry.MAX_CONSECUTIVE_FAILURES
            if state == "Failed" and retry.gives_up(failures, limit):
                state = "FailedNonRetriable"
                message = (f"gave up after {failures} consecutive failures (change the input "
                           f"or run `flotilla retry`): {message}")
        else:
            failures = 0
        row = {"name": described.name, "kind": described.kind, "status": state,
               "message": limits.shorten(message, ROW_MESSAGE_LEN),
               "consecutiveFailures": failures, "version": described.version,
               "hash": item.hash,
               # Microseconds: ordering tests and people compare these across summaries.
               "lastAppliedTime": reporting.now_precise() if applied
               else old.get("lastAppliedTime", "")}
        if healthy is not None:
            row["healthy"] = healthy
        if reason:
            row["reason"] = reason
        if failures:
            row["lastAttemptTime"] = reporting.now_precise()
        return row

    async def apply(self) -> Result:
        result = Result(inventory={e.key: e.hash for e in self.recorded})
        actions = inventory.changes(self.want.items, self.recorded, withdraw=True)
        changed = {i.key for i in actions.apply}
        healthy_rows: dict[str, bool] = {}
        blocked = ""
        for item in self.want.items:
            deployer = deployers.for_item(item)
            name = deployer.row(item).name
            if blocked:
                result.services.append(self._row(item, "Provisioning", f"not started: {blocked}"))
                continue
            waiting = [d for d in deployer.depends_on(item) if not healthy_rows.get(d)]
            if waiting:
                result.services.append(self._row(
                    item, "Provisioning", f"waiting for {', '.join(waiting)} to be healthy"))
                healthy_rows[name] = False
                continue
            old = self.old_rows.get(name) or {}
            if item.key in changed and old.get("status") == "FailedNonRetriable" \
                    and old.get("hash") == item.hash and not self.retry_now:
                # The same input cannot succeed: wait for a change instead of retrying on
                # every unrelated event.
                result.services.append(dict(old))
                blocked = "" if self.pspec.continue_on_error else f"{name} failed"
                continue
            try:
                if item.key in changed:
                    await deployer.apply(self.target, item, self.want.values.get(item.key, {}),
                                         self._publisher(item))
                    result.inventory[item.key] = item.hash
                else:
                    # Unchanged, but a lower tier may have taken it over since: one GET.
                    await deployer.still_ours(self.target, item)
                ok, why = await deployer.health(self.target, item)
            except errors.ConflictError as exc:
                result.services.append(self._row(item, "Conflict", str(exc)))
                blocked = "" if self.pspec.continue_on_conflict else f"conflict on {name}"
                continue
            except errors.FlotillaError as exc:
                state = "Failed" if exc.retriable else "FailedNonRetriable"
                result.services.append(self._row(item, state, str(exc), reason=exc.reason))
                blocked = "" if self.pspec.continue_on_error else f"{name} failed"
                continue
            healthy_rows[name] = ok
            result.services.append(self._row(item, "Provisioned", why, healthy=ok,
                                             applied=item.key in changed))
        if not blocked:
            for entry in actions.delete:
                await deployers.for_key(entry.key).remove(self.target, entry.key)
                result.inventory.pop(entry.key, None)
        await self._validate_healths(result)
        return conclude(result)

    async def check_health(self) -> Result:
        """Nothing to apply (hash-gated): only judge health again."""
        result = Result(inventory={e.key: e.hash for e in self.recorded})
        for item in self.want.items:
            ok, why = await deployers.for_item(item).health(self.target, item)
            result.services.append(self._row(item, "Provisioned", why, healthy=ok))
        await self._validate_healths(result)
        return conclude(result)

    async def dry_run(self) -> Result:
        """Record what a deployment would change, and change nothing."""
        actions = inventory.changes(self.want.items, self.recorded, withdraw=True)
        result = Result(inventory={e.key: e.hash for e in self.recorded}, phase="DryRun",
                        reason="DryRun")
        for item in actions.apply:
            line = await deployers.for_item(item).would(self.target, item,
                                                        self.want.values.get(item.key, {}))
            result.services.append(self._row(item, "Provisioning", line))
        for entry in actions.delete:
            result.services.append({"name": "/".join(entry.key), "kind": "Manifests",
                                    "status": "Removing", "message": "would delete"})
        result.message = f"{len(actions.apply)} to apply, {len(actions.delete)} to delete"
        return result

    async def _validate_healths(self, result: Result) -> None:
        """The profile's validateHealths, each once the feature it follows is deployed."""
        for i, check in enumerate(self.pspec.validate_healths):
            pending = _not_deployed(check.feature_id, result.services)
            if pending:
                verdict = health.HealthResult(False, f"{check.name}: waiting for "
                                              f"{check.feature_id} to be deployed ({pending})")
            elif check.job_check is not None:
                owner = self.target.owner
                verdict = await jobchecks.run(
                    self.ctx, self.target.conn, check, check.job_check,
                    profile_namespace=owner.namespace if owner.kind == api.PROFILE else None,
                    revision_hash=self.want.hash)
            else:
                verdict = await base.check(self.target.conn, check, None,
                                           f"spec.validateHealths[{i}]")
            result.checks.append(verdict)
            result.healthy = result.healthy and verdict.healthy

    def _publisher(self, item: inventory.DesiredItem) -> base.Publish | None:
        if self.write_status is None:
            return None
        row = deployers.for_item(item).row(item)
        return summary_row(self.ctx, self.summary, {
            "name": row.name, "kind": row.kind, "version": row.version, "hash": item.hash},
            self.write_status)


def target(ctx: context.Context, conn: connections.Connection, owner: workload.Owner,
           pspec: types.ProfileSpec, summary: dict[str, Any] | None = None) -> base.Target:
    """The deployers' view of one (profile, cluster): what they may use, nothing more."""

    def release_options(namespace: str, release: str) -> HelmOptions | None:
        return desired.release_options(ctx, summary, namespace, release) if summary else None

    return base.Target(conn=conn, owner=owner, pspec=pspec,
                       fetch_chart=lambda rel: chart_dir(ctx, rel),
                       release_options=release_options)


async def chart_dir(ctx: context.Context, rel: ReleasePlan) -> Path:
    """The release's chart, unpacked in the chart cache (through the mirror map)."""
    ctx.charts.set_mirrors(ctx.mirrors())
    return await ctx.charts.ensure(helm.ChartCoordinates(
        rel.repository_url, rel.chart_name, rel.chart_version))


def summary_row(ctx: context.Context, summary: dict[str, Any], row: dict[str, Any],
                write: WriteStatus) -> base.Publish:
    """A publisher that shows a progress line as the message of service row `row`.

    `row` names the row and may set more of its fields; the rest of the status
    stays as the API has it. After a write the reconcile's own copy of the
    summary is brought up to date, so that its final status write compares
    against what the API now holds (and is not skipped as "unchanged").
    """
    meta = summary["metadata"]

    async def publish(line: str) -> None:
        current = ctx.store.get("ClusterSummary", meta["namespace"], meta["name"]) or summary
        status = copy.deepcopy(current.get("status") or {})
        rows = list(status.get("services") or [])
        at = next((i for i, r in enumerate(rows) if r.get("name") == row["name"]), len(rows))
        mine = {**(rows[at] if at < len(rows) else {}), **row, "status": "Provisioning",
                "message": line}
        rows[at:at + 1] = [mine]
        status["services"] = rows
        status["phase"], status["message"] = "Provisioning", f"{row['name']}: {line}"
        try:
            if await write(status):
                stored = ctx.store.get("ClusterSummary", meta["namespace"], meta["name"])
                summary["status"] = copy.deepcopy((stored or {}).get("status") or status)
        except errors.FlotillaError as exc:  # progress is best effort; the outcome is not
            log.warning("progress of %s/%s not written: %s", meta["namespace"], meta["name"],
                        exc)

    return publish


def conclude(result: Result) -> Result:
    """The summary's phase, reason, message and requeue from its rows."""
    states = [r["status"] for r in result.services]
    unhealthy = [r for r in result.services if r.get("healthy") is False]
    result.healthy = result.healthy and not unhealthy
    # validateHealths: the failing ones explain an unhealthy summary; the passing ones
    # (which rule decided) follow a healthy summary's message.
    checks = [f"validateHealths {c.message}" for c in result.checks
              if result.healthy or not c.healthy]
    if "Conflict" in states:
        result.phase, result.reason = "Conflict", "Conflict"
        result.message = "; ".join(r["message"] for r in result.services
                                   if r["status"] == "Conflict")
        result.requeue_after = 30.0
    elif "Failed" in states or "FailedNonRetriable" in states:
        failed = [r for r in result.services if r["status"].startswith("Failed")]
        result.phase, result.reason = "Failed", "DeploymentFailed"
        result.message = "; ".join(f"{r['name']}: {r['message']}" for r in failed)
        tries = max(int(r.get("consecutiveFailures", 1)) for r in failed)
        retriable = any(r["status"] == "Failed" for r in failed)
        result.requeue_after = retry.delay(tries) if retriable else None
    elif "Provisioning" in states:
        result.phase, result.reason = "Provisioning", "WaitingForDependencies"
        result.message = "; ".join(f"{r['name']}: {r['message']}" for r in result.services
                                   if r["status"] == "Provisioning")
        result.requeue_after = 2.0
    else:
        result.phase = "Provisioned"
        result.reason = "Provisioned" if result.healthy else "Unhealthy"
        if result.healthy:
            result.message = "; ".join(
                [f"{len(result.services)} services provisioned and healthy", *checks])
        else:
            result.message = "; ".join(
                [*(f"{r['name']}: {r['message']}" for r in unhealthy), *checks])
            result.requeue_after = 2.0
    return result
