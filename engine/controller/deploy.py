"""Carry out one summary's plan on its workload cluster, item by item, in dependency order.

Used by `summaries.reconcile`. Each item (a Helm release or a manifest)
becomes one status row; a failure is a row with a message, not an aborted
run. `continueOnConflict` / `continueOnError` decide whether later items
still go ahead. A release whose dependencies are not healthy yet waits
(Provisioning, with the reason) and the summary is re-queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import drift, errors, health, plan, retry
from engine.adapters import connections, helm, kube, workload
from engine.catalog import ReleasePlan
from engine.controller import context, desired, helmrun, progress, reporting
from engine.model import limits, types

# A service row keeps the head and tail of a long helm error; the summary stays small.
ROW_MESSAGE_LEN = 4096


@dataclass
class Result:
    services: list[dict[str, Any]] = field(default_factory=list)
    inventory: dict[plan.Key, str] = field(default_factory=dict)
    healthy: bool = True
    phase: str = "Provisioned"
    reason: str = "Provisioned"
    message: str = ""
    requeue_after: float | None = None


class Runner:
    def __init__(self, ctx: context.Context, conn: connections.Connection, owner: workload.Owner,
                 pspec: types.ProfileSpec, summary: dict[str, Any], want: desired.Desired,
                 write_status: progress.WriteStatus | None = None, retry_now: bool = False,
                 ) -> None:
        self.ctx, self.conn, self.owner, self.pspec = ctx, conn, owner, pspec
        # Someone asked for a retry (flotilla retry): failure counts start over and
        # FailedNonRetriable items are tried again.
        self.retry_now = retry_now
        self.summary, self.want = summary, want
        self.write_status = write_status  # for progress lines while helm runs
        status = summary.get("status") or {}
        self.old_rows = {r.get("name"): r for r in status.get("services") or []}
        self.taken: list[str] = []  # owners we took something over from (lower tier)
        self.recorded = [plan.InventoryEntry.from_dict(r) for r in status.get("inventory") or []]

    def _row(self, item: plan.DesiredItem, state: str, message: str = "", *,
             healthy: bool | None = None, applied: bool = False, reason: str = "",
             ) -> dict[str, Any]:
        name, kind, version = _describe(item)
        old = self.old_rows.get(name) or {}
        same_input = old.get("hash") == item.hash and not self.retry_now
        failures = int(old.get("consecutiveFailures", 0)) if same_input else 0
        if state in ("Failed", "FailedNonRetriable"):
            failures += 1
            if state == "Failed" and retry.gives_up(failures):
                state = "FailedNonRetriable"
                message = (f"gave up after {failures} consecutive failures (change the input "
                           f"or run `flotilla retry`): {message}")
        else:
            failures = 0
        row = {"name": name, "kind": kind, "status": state,
               "message": limits.shorten(message, ROW_MESSAGE_LEN),
               "consecutiveFailures": failures, "version": version, "hash": item.hash,
               "lastAppliedTime": reporting.now() if applied else old.get("lastAppliedTime", "")}
        if healthy is not None:
            row["healthy"] = healthy
        if reason:
            row["reason"] = reason
        if failures:
            row["lastAttemptTime"] = reporting.now_precise()
        return row

    async def run(self) -> Result:
        result = Result(inventory={e.key: e.hash for e in self.recorded})
        actions = plan.plan(self.want.items, self.recorded, withdraw=True)
        changed = {i.key for i in actions.apply}
        healthy_releases: dict[str, bool] = {}
        blocked = ""
        for item in self.want.items:
            if blocked:
                result.services.append(self._row(item, "Provisioning", f"not started: {blocked}"))
                continue
            if item.is_release:
                rel = item.body
                assert isinstance(rel, ReleasePlan)
                waiting = [d for d in rel.depends_on if not healthy_releases.get(d)]
                if waiting:
                    result.services.append(self._row(
                        item, "Provisioning", f"waiting for {', '.join(waiting)} to be healthy"))
                    healthy_releases[rel.release_name] = False
                    continue
            old = self.old_rows.get(_describe(item)[0]) or {}
            if item.key in changed and old.get("status") == "FailedNonRetriable" \
                    and old.get("hash") == item.hash and not self.retry_now:
                # The same input cannot succeed: wait for a change instead of retrying on
                # every unrelated event.
                result.services.append(dict(old))
                if not self.pspec.continue_on_error:
                    blocked = f"{_describe(item)[0]} failed"
                continue
            try:
                if item.key in changed:
                    await self._apply(item)
                    result.inventory[item.key] = item.hash
                else:
                    # Unchanged, but a lower tier may have taken it over since: one GET.
                    await self.conn.workload.still_ours(item.key, self.owner)
                ok, why = await self._health(item)
            except errors.ConflictError as exc:
                result.services.append(self._row(item, "Conflict", str(exc)))
                if not self.pspec.continue_on_conflict:
                    blocked = f"conflict on {_describe(item)[0]}"
                continue
            except errors.FlotillaError as exc:
                state = "Failed" if exc.retriable else "FailedNonRetriable"
                result.services.append(self._row(item, state, str(exc), reason=exc.reason))
                if not self.pspec.continue_on_error:
                    blocked = f"{_describe(item)[0]} failed"
                continue
            if item.is_release:
                healthy_releases[item.key[2]] = ok
            result.services.append(self._row(item, "Provisioned", why, healthy=ok,
                                             applied=item.key in changed))
        if not blocked:
            for entry in actions.delete:
                await self._remove(entry)
                result.inventory.pop(entry.key, None)
        await self._validate_healths(result)
        return _conclude(result)

    async def health_only(self) -> Result:
        result = Result(inventory={e.key: e.hash for e in self.recorded})
        for item in self.want.items:
            ok, why = await self._health(item)
            result.services.append(self._row(item, "Provisioned", why, healthy=ok))
        await self._validate_healths(result)
        return _conclude(result)

    async def dry_run(self) -> Result:
        """Record what a deployment would change, and change nothing."""
        actions = plan.plan(self.want.items, self.recorded, withdraw=True)
        result = Result(inventory={e.key: e.hash for e in self.recorded}, phase="DryRun",
                        reason="DryRun")
        for item in actions.apply:
            result.services.append(self._row(item, "Provisioning", await self._would(item)))
        for entry in actions.delete:
            result.services.append({"name": "/".join(entry.key), "kind": "Manifests",
                                    "status": "Removing", "message": "would delete"})
        result.message = f"{len(actions.apply)} to apply, {len(actions.delete)} to delete"
        return result

    async def _would(self, item: plan.DesiredItem) -> str:
        """What applying this item would do, with the changed paths of an update."""
        if item.is_release:
            rel = item.body
            assert isinstance(rel, ReleasePlan)
            current = await self.conn.releases().revision(release=rel.release_name,
                                                          namespace=rel.namespace)
            if rel.uninstall:
                return "would uninstall" if current is not None else "would do nothing"
            owner = await self.conn.workload.release_owner(rel.release_name, rel.namespace)
            if owner and owner != self.owner.ref:
                return f"would conflict with {owner}"
            if current is None:
                return "would install"
            crds = await helmrun.removed_crds(self.conn, rel, await chart_dir(self.ctx, rel),
                                              self.want.values[item.key])
            return f"would upgrade to {rel.chart_name} {rel.chart_version}" + \
                (f"; {crds}" if crds else "")
        verb, detail = await object_change(self.conn, item, self.owner)
        return {"create": "would create", "conflict": f"would conflict with {detail}",
                "update": f"would update: {detail}"}.get(verb, "would do nothing")

    async def _apply(self, item: plan.DesiredItem) -> None:
        if item.is_release:
            rel = item.body
            assert isinstance(rel, ReleasePlan)
            if rel.uninstall:
                if await self.conn.workload.release_owner(rel.release_name, rel.namespace) in (
                        None, self.owner.ref):
                    await self.conn.releases().uninstall(release=rel.release_name,
                                                         namespace=rel.namespace,
                                                         options=rel.options)
                return
            await self.conn.workload.claim_release(rel.release_name, rel.namespace, self.owner,
                                                   self.taken)
            name, kind, version = _describe(item)
            publish = None if self.write_status is None else progress.summary_row(
                self.ctx, self.summary, {"name": name, "kind": kind, "version": version,
                                         "hash": item.hash}, self.write_status)
            await install_release(self.ctx, self.conn, rel, self.want.values[item.key], publish)
        else:
            assert not isinstance(item.body, ReleasePlan)
            await self.conn.workload.apply(
                item.body, self.owner, item.hash,
                exclusions=drift.exclusions_for(self.pspec, item.body), taken=self.taken)

    async def _remove(self, entry: plan.InventoryEntry) -> None:
        if entry.key[0] == plan.HELM and len(entry.key) == 3:
            _, ns, release = entry.key
            if await self.conn.workload.release_owner(release, ns) == self.owner.ref:
                await self.conn.releases().uninstall(release=release, namespace=ns)
                await self.conn.workload.drop_release_claim(release, ns, self.owner)
        else:
            await self.conn.workload.delete(entry.key, self.owner)

    async def _health(self, item: plan.DesiredItem) -> tuple[bool, str]:
        if not item.is_release:
            return True, ""
        rel = item.body
        assert isinstance(rel, ReleasePlan)
        if rel.uninstall:
            return True, "uninstalled"
        results = [await self._check(c, rel.namespace, f"{rel.field}.healthChecks")
                   for c in rel.health_checks]
        worst = health.worst(results) if results else health.HealthResult(True, "")
        return worst.healthy, worst.message

    async def _check(self, check: types.HealthCheck, default_ns: str | None,
                     where: str) -> health.HealthResult:
        api_version = f"{check.group}/{check.version}" if check.group else check.version
        try:
            objects = await self.conn.workload.objects_for(
                api_version=api_version, kind=check.kind,
                namespace=check.namespace or default_ns, name=check.object_name,
                label_selector=check.label_selector)
        except kube.NotFound as exc:  # the kind is not served (yet): not healthy, not an error
            return health.HealthResult(False, str(exc))
        return health.evaluate(check, objects, field=where)

    async def _validate_healths(self, result: Result) -> None:
        for i, check in enumerate(self.pspec.validate_healths):
            verdict = await self._check(check, None, f"spec.validateHealths[{i}]")
            if not verdict.healthy:
                result.healthy = False
                result.message = f"validateHealths {check.name}: {verdict.message}"


async def object_change(conn: connections.Connection, item: plan.DesiredItem,
                        owner: workload.Owner) -> tuple[str, str]:
    """What applying a manifest would do now: (create|conflict|update|unchanged, detail).

    Used by DryRun reports and `flotilla plan`; the detail is the winning owner of a
    conflict or the changed JSON pointers of an update.
    """
    body = item.body
    assert not isinstance(body, ReleasePlan)
    meta = body["metadata"]
    live = await conn.client.get(body["apiVersion"], body["kind"], meta.get("namespace"),
                                 meta["name"])
    if live is None:
        return "create", ""
    holder, tier = workload.owner_of(live)
    if plan.decide_ownership(current_owner=holder, current_tier=tier, me=owner.ref,
                             my_tier=owner.tier) is plan.Ownership.CONFLICT:
        return "conflict", str(holder)
    report = drift.diff(workload.marked(body, owner, item.hash), live)
    return ("update", ", ".join(report.paths)) if report.drifted else ("unchanged", "")


async def chart_dir(ctx: context.Context, rel: ReleasePlan) -> Path:
    """The release's chart, unpacked in the chart cache (through the mirror map)."""
    ctx.charts.set_mirrors(ctx.mirrors())
    return await ctx.charts.ensure(helm.ChartCoordinates(
        rel.repository_url, rel.chart_name, rel.chart_version))


async def install_release(ctx: context.Context, conn: connections.Connection,
                          rel: ReleasePlan, values: Mapping[str, Any],
                          publish: progress.Publish | None = None) -> None:
    """Install or upgrade one release (deploys and drift corrections); see `helmrun`."""
    reporting.log.info("%s: helm install/upgrade %s/%s (%s %s)", conn.name, rel.namespace,
                       rel.release_name, rel.chart_name, rel.chart_version)
    await helmrun.install(conn, rel, await chart_dir(ctx, rel), values, publish)


def _conclude(result: Result) -> Result:
    states = [r["status"] for r in result.services]
    unhealthy = [r for r in result.services if r.get("healthy") is False]
    result.healthy = result.healthy and not unhealthy
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
            result.message = f"{len(result.services)} services provisioned and healthy"
        else:
            result.message = result.message or "; ".join(
                f"{r['name']}: {r['message']}" for r in unhealthy)
            result.requeue_after = 2.0
    return result


def _describe(item: plan.DesiredItem) -> tuple[str, str, str]:
    if item.is_release:
        rel = item.body
        assert isinstance(rel, ReleasePlan)
        return rel.release_name, "HelmRelease", rel.chart_version
    _group, _version, kind, ns, name = item.key
    return f"{kind}/{ns + '/' if ns else ''}{name}", "Manifests", ""
