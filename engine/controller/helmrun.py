"""One helm install or upgrade as the controller runs it: CRDs kept, progress shown.

Used by `deploy.install_release` (deployments and drift corrections), by
DryRun reports and `flotilla plan` (`removed_crds`), and by withdrawal
(`uninstall_options`). Around `Releases.install_or_upgrade` it adds:

* CRD protection for releases installed before the post-renderer existed:
  a CRD in the current manifest without `helm.sh/resource-policy: keep`
  gets the annotation on its live copy before the upgrade, which is what
  Helm checks before deleting it (unless the profile set allowCRDDeletion);
* a `progress.Reporter` that publishes what helm waits for;
* a hook failure that names the hook Job that held helm.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine import catalog, crdguard, errors
from engine.adapters import connections, helm
from engine.controller import context, profiles, progress
from engine.model import types
from engine.model.helmopts import HelmOptions

log = logging.getLogger("flotilla.controller")
CRD_API = "apiextensions.k8s.io/v1"


async def install(conn: connections.Connection, rel: catalog.ReleasePlan, chart_dir: Path,
                  values: Mapping[str, Any], publish: progress.Publish | None = None) -> None:
    async def protect(state: helm.ReleaseState) -> None:
        if not rel.options.allow_crd_deletion:
            await keep_live_crds(conn, state.manifest)

    async def list_jobs() -> list[dict[str, Any]]:
        return await conn.client.list("batch/v1", "Job", namespace=rel.namespace)

    reporter = progress.Reporter(list_jobs, publish)
    try:
        await conn.releases().install_or_upgrade(
            release=rel.release_name, namespace=rel.namespace, chart_dir=chart_dir,
            values=values, options=rel.options, on_start=reporter.start,
            before_upgrade=protect)
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


async def removed_crds(conn: connections.Connection, rel: catalog.ReleasePlan, chart_dir: Path,
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


def uninstall_options(ctx: context.Context, summary: Mapping[str, Any], namespace: str,
                      release: str) -> HelmOptions:
    """The helm options the summary's profile gives a release it withdraws (else defaults).

    Withdrawal has only the inventory; the options come from the profile as it
    is now, as Sveltos does. A profile that no longer resolves gives defaults.
    """
    ref = (summary.get("spec") or {}).get("profileRef") or {}
    profile = ctx.store.get(ref.get("kind", ""), ref.get("namespace") or "", ref.get("name", ""))
    if profile is None:
        return HelmOptions()
    try:
        spec = types.ProfileSpec.from_dict(profile.get("spec") or {})
        plans = catalog.resolve(spec, profiles.catalog_specs(ctx))
    except errors.FlotillaError:
        return HelmOptions()
    for plan in plans:
        if plan.release_name == release and plan.namespace == namespace:
            return plan.options
    return HelmOptions()
