"""Helm releases: claimed, installed or upgraded with CRDs kept and progress shown.

One of the deployers (see `base.Deployer`). A release is one unit: it is
applied, removed and corrected whole (`helm upgrade`), while drift detection
watches every object of its manifest. Around the adapter's
`Releases.install_or_upgrade` this adds:

* ownership: a release is claimed (ConfigMap `flotilla-owner.<release>`)
  before helm touches it, and uninstalled on removal only while still ours;
* CRD protection for releases installed before the post-renderer existed:
  a CRD in the current manifest without `helm.sh/resource-policy: keep`
  gets the annotation on its live copy before an upgrade, which is what
  Helm checks before deleting it (unless the profile set allowCRDDeletion);
* a `hookwatch.Reporter` that publishes what helm waits for, and a hook
  failure that names the hook Job that held helm;
* health: the catalog's health checks of the service, over live objects.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from engine import crdguard, drift, errors, health, inventory
from engine.adapters import connections, workload
from engine.adapters import helm as helm_adapter
from engine.catalog import ReleasePlan
from engine.deployers import base, hookwatch
from engine.drift import fights
from engine.model import types
from engine.model.helmopts import HelmOptions

log = logging.getLogger("flotilla.deployers")
HELM_MANAGED_BY = ("app.kubernetes.io/managed-by", "Helm")
CRD_API = "apiextensions.k8s.io/v1"


def _release(item: inventory.DesiredItem) -> ReleasePlan:
    assert isinstance(item.body, ReleasePlan)
    return item.body


class Helm:
    # Drift watches select these objects by the label Helm puts on every release object.
    watch_selector = "=".join(HELM_MANAGED_BY)

    def row(self, item: inventory.DesiredItem) -> base.Row:
        rel = _release(item)
        return base.Row(name=rel.release_name, kind="HelmRelease", version=rel.chart_version)

    def depends_on(self, item: inventory.DesiredItem) -> tuple[str, ...]:
        return tuple(_release(item).depends_on)

    async def apply(self, target: base.Target, item: inventory.DesiredItem,
                    values: Mapping[str, Any], publish: base.Publish | None) -> None:
        rel, conn = _release(item), target.conn
        if rel.uninstall:  # helmChartAction Uninstall: only a release nobody else owns
            if await conn.workload.release_owner(rel.release_name, rel.namespace) in (
                    None, target.owner.ref):
                await conn.releases().uninstall(release=rel.release_name,
                                                namespace=rel.namespace, options=rel.options)
            return
        chart_dir = await target.fetch_chart(rel)
        if target.limits is not None and not target.limits.allow_cluster_scoped:
            await base.refuse_cluster_scoped(
                target, await rendered(conn, rel, chart_dir, values),
                field=release_field(target.pspec, rel))
        await conn.workload.claim_release(rel.release_name, rel.namespace, target.owner,
                                          target.taken)
        await install(conn, rel, chart_dir, values, publish)

    async def still_ours(self, target: base.Target, item: inventory.DesiredItem) -> None:
        await target.conn.workload.still_ours(item.key, target.owner)

    async def remove(self, target: base.Target, key: inventory.Key) -> None:
        _, ns, release = key
        await remove(target.conn, key, target.owner, target.release_options(ns, release))

    async def health(self, target: base.Target,
                     item: inventory.DesiredItem) -> tuple[bool, str]:
        rel = _release(item)
        if rel.uninstall:
            return True, "uninstalled"
        results = [await base.check(target.conn, c, rel.namespace, f"{rel.field}.healthChecks")
                   for c in rel.health_checks]
        worst = health.worst(results) if results else health.HealthResult(True, "")
        return worst.healthy, worst.message

    async def would(self, target: base.Target, item: inventory.DesiredItem,
                    values: Mapping[str, Any]) -> str:
        rel, conn = _release(item), target.conn
        current = await conn.releases().revision(release=rel.release_name,
                                                 namespace=rel.namespace)
        if rel.uninstall:
            return "would uninstall" if current is not None else "would do nothing"
        owner = await conn.workload.release_owner(rel.release_name, rel.namespace)
        if owner and owner != target.owner.ref:
            return f"would conflict with {owner}"
        if current is None:
            return "would install"
        crds = await removed_crds(conn, rel, await target.fetch_chart(rel), values)
        return f"would upgrade to {rel.chart_name} {rel.chart_version}" + \
            (f"; {crds}" if crds else "")

    async def plan_line(self, target: base.Target, item: inventory.DesiredItem,
                        values: Mapping[str, Any]) -> str:
        rel, releases = _release(item), target.conn.releases()
        what = (f"HelmRelease {rel.namespace}/{rel.release_name} "
                f"({rel.chart_name} {rel.chart_version})")
        current = await releases.revision(release=rel.release_name, namespace=rel.namespace)
        if rel.uninstall:
            return f"uninstall {what}" if current is not None else f"unchanged {what} (absent)"
        if current is None:
            return f"install {what}"
        live_values = await releases.values(release=rel.release_name, namespace=rel.namespace)
        chart = await releases.chart(release=rel.release_name, namespace=rel.namespace)
        changes = [] if chart == f"{rel.chart_name}-{rel.chart_version}" else [f"chart {chart}"]
        report = drift.diff({"values": dict(values)}, {"values": live_values})
        changes += list(report.paths)
        if report.drifted and not changes:
            changes = ["values"]
        if not changes:
            return f"unchanged {what}"
        # Only a real upgrade can drop a CRD (a server-side dry run, so lookups see the cluster).
        crds = await removed_crds(target.conn, rel, await target.fetch_chart(rel), values)
        return f"upgrade {what}: {', '.join(changes)}" + (f"; {crds}" if crds else "")

    async def watched(self, target: base.Target,
                      item: inventory.DesiredItem) -> list[dict[str, Any]]:
        rel, conn = _release(item), target.conn
        if rel.uninstall:
            return []
        objs = await conn.releases().manifest(release=rel.release_name, namespace=rel.namespace)
        return [helm_marked(await _with_namespace(conn, o, rel.namespace), rel)
                for o in objs]

    def unit(self, item: inventory.DesiredItem, obj_key: tuple[str, str, str, str],
             ) -> fights.Unit:
        rel = _release(item)
        return fights.release_unit(rel.namespace, rel.release_name)

    async def correct(self, target: base.Target, item: inventory.DesiredItem,
                      values: Mapping[str, Any]) -> None:
        rel = _release(item)
        await install(target.conn, rel, await target.fetch_chart(rel), values, None)


async def install(conn: connections.Connection, rel: ReleasePlan, chart_dir: Path,
                  values: Mapping[str, Any], publish: base.Publish | None = None) -> None:
    """helm install or upgrade of one release (deploys and drift corrections)."""
    log.info("%s: helm install/upgrade %s/%s (%s %s)", conn.name, rel.namespace,
             rel.release_name, rel.chart_name, rel.chart_version)

    async def protect(state: helm_adapter.ReleaseState) -> None:
        if not rel.options.allow_crd_deletion:
            await keep_live_crds(conn, state.manifest)

    async def list_jobs() -> list[dict[str, Any]]:
        return await conn.client.list("batch/v1", "Job", namespace=rel.namespace)

    reporter = hookwatch.Reporter(list_jobs, publish)
    try:
        await conn.releases().install_or_upgrade(
            release=rel.release_name, namespace=rel.namespace, chart_dir=chart_dir,
            values=values, options=rel.options, on_start=reporter.start,
            before_upgrade=protect, transform=rel.post_render)
    except errors.FlotillaError as exc:
        await reporter.stop()
        if exc.reason not in ("HookTimeout", "HookFailed"):
            raise
        detail = await reporter.failure_detail()
        if not detail:
            raise
        raise errors.RetriableError(f"helm {reporter.verb} of {rel.namespace}/"
                                    f"{rel.release_name}: {detail}: {exc}", reason=exc.reason,
                                    delay=10) from exc
    finally:
        await reporter.stop()


async def remove(conn: connections.Connection, key: inventory.Key, owner: workload.Owner,
                 options: HelmOptions | None = None) -> None:
    """Uninstall a recorded release while it is still ours, and drop our claim on it."""
    _, ns, release = key
    if await conn.workload.release_owner(release, ns) == owner.ref:
        await conn.releases().uninstall(release=release, namespace=ns,
                                        options=options or HelmOptions())
        await conn.workload.drop_release_claim(release, ns, owner)


async def keep_live_crds(conn: connections.Connection, manifest: str) -> list[str]:
    """Annotate `keep` the live CRDs of a manifest that lack it; their names."""
    patched = []
    for doc in crdguard.crd_docs(manifest):
        if not crdguard.lacks_keep(doc):
            continue  # post-rendered by us: the live copy carries it too
        name = str((doc.get("metadata") or {}).get("name", ""))
        live = await conn.client.get(CRD_API, "CustomResourceDefinition", None, name)
        if live is not None and crdguard.lacks_keep(live):
            await conn.client.patch(CRD_API, "CustomResourceDefinition", None, name, {
                "metadata": {"annotations": {crdguard.RESOURCE_POLICY: crdguard.KEEP}}})
            log.info("%s: CRD %s annotated %s=%s before an upgrade of its release", conn.name,
                     name, crdguard.RESOURCE_POLICY, crdguard.KEEP)
            patched.append(name)
    return patched


async def removed_crds(conn: connections.Connection, rel: ReleasePlan, chart_dir: Path,
                       values: Mapping[str, Any]) -> str:
    """What an upgrade would do to CRDs the release has now: "" when it keeps them all.

    Compares the CRDs of the current revision with those of a server-side dry
    run (so that `lookup` in templates sees the cluster, as the real upgrade will).
    """
    releases = conn.releases()
    state = await releases.current(release=rel.release_name, namespace=rel.namespace)
    if state is None or rel.uninstall:
        return ""
    new = await releases.render_upgrade(release=rel.release_name, namespace=rel.namespace,
                                        chart_dir=chart_dir, values=values, options=rel.options)
    gone = crdguard.removed_crds(crdguard.crd_docs(state.manifest), new)
    if not gone:
        return ""
    names = ", ".join(gone)
    if rel.options.allow_crd_deletion:
        return f"would delete CRD {names} and every object of its kind (allowCRDDeletion)"
    return f"would remove CRD {names} from the release; kept on the cluster " \
           f"({crdguard.RESOURCE_POLICY}: {crdguard.KEEP})"


async def rendered(conn: connections.Connection, rel: ReleasePlan, chart_dir: Path,
                   values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every object the chart renders with these values: templates, hooks and (unless
    skipCRDs) its crds/ folder — `helm template`, client-side, so it costs one helm run and
    no API call; only tenant Profiles limited to namespaced objects pay it (see `apply`)."""
    argv = ["template", rel.release_name, str(chart_dir), "--namespace", rel.namespace,
            "--values", "-"]
    if not rel.options.skip_crds:
        argv.append("--include-crds")
    out = await conn.releases()._run(argv, f"helm template of {rel.namespace}/"
                                           f"{rel.release_name}", values)
    try:
        docs = list(yaml.safe_load_all(out.decode(errors="replace")))
    except yaml.YAMLError as exc:
        raise errors.SpecError(f"the chart {rel.chart_name} renders invalid YAML: "
                               f"{str(exc)[:200]}", field="values",
                               reason="RenderFailed") from None
    return [doc for doc in docs if isinstance(doc, dict)]


def release_field(pspec: types.ProfileSpec, rel: ReleasePlan) -> str:
    """The spec field a release comes from: its helmCharts entry, else the catalog services."""
    for i, chart in enumerate(pspec.helm_charts):
        if (chart.release_name, chart.release_namespace) == (rel.release_name, rel.namespace):
            return f"spec.helmCharts[{i}]"
    return "spec.services"


def helm_marked(obj: dict[str, Any], rel: ReleasePlan) -> dict[str, Any]:
    """The object with the ownership marks Helm itself puts on everything it applies.

    `helm get manifest` has the chart's rendering, but Helm writes
    `app.kubernetes.io/managed-by: Helm` and its release annotations over it
    (kserve's chart says managed-by "kserve-controller-manager"): compared as
    rendered, such an object would drift forever and every correction would
    set the label back to Helm.
    """
    meta = dict(obj.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), HELM_MANAGED_BY[0]: HELM_MANAGED_BY[1]}
    meta["annotations"] = {**(meta.get("annotations") or {}),
                           "meta.helm.sh/release-name": rel.release_name,
                           "meta.helm.sh/release-namespace": rel.namespace}
    return {**obj, "metadata": meta}


async def _with_namespace(conn: connections.Connection, obj: dict[str, Any],
                          default: str) -> dict[str, Any]:
    """The object under the namespace the server files it in.

    Helm manifests may omit metadata.namespace for namespaced kinds, and some
    charts set one on cluster-scoped kinds, which the server drops: keyed as
    rendered, such an object would never be found live and look deleted.
    """
    try:
        res = await conn.client.resource(obj["apiVersion"], obj["kind"])
    except errors.FlotillaError:
        return obj
    meta = dict(obj.get("metadata") or {})
    if res.namespaced and not meta.get("namespace"):
        return {**obj, "metadata": {**meta, "namespace": default}}
    if not res.namespaced and "namespace" in meta:
        del meta["namespace"]
        return {**obj, "metadata": meta}
    return obj
