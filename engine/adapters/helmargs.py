"""Helm v3 command lines for install, upgrade and uninstall, from resolved Helm options.

Used by `adapters.helm.Releases`. pyhelm3 exposes only some of helm's flags
(no post-renderer, no labels, no --history-max per call, and "atomic" spelled
the Helm 4 way), so the adapter builds the argument lists here and runs them
through pyhelm3's command runner, which keeps its kubeconfig handling and
error classification. Pure: options in, argument lists out; the options'
meaning is in docs/api.md, which also lists the ones helm cannot honour.
"""

from __future__ import annotations

from engine.model.helmopts import Resolved, describe_timeout


def _common(opts: Resolved, *, hooks_off: bool) -> list[str]:
    """Flags install and upgrade share."""
    flags = ["--timeout", describe_timeout(opts.timeout)]
    for on, flag in ((hooks_off, "--no-hooks"), (opts.atomic, "--atomic"),
                     (opts.wait, "--wait"), (opts.wait_for_jobs, "--wait-for-jobs"),
                     (opts.skip_crds, "--skip-crds"),
                     (opts.skip_schema_validation, "--skip-schema-validation"),
                     (opts.disable_openapi_validation, "--disable-openapi-validation"),
                     (opts.dependency_update, "--dependency-update")):
        if on:
            flags.append(flag)
    if opts.description:
        flags += ["--description", opts.description]
    if opts.labels:
        flags += ["--labels", ",".join(f"{k}={v}" for k, v in sorted(opts.labels.items()))]
    return flags


def install(release: str, chart: str, namespace: str, opts: Resolved, *,
            post_render: list[str]) -> list[str]:
    """`helm install`; values come on stdin, the result as JSON on stdout."""
    argv = ["install", release, chart, "--namespace", namespace, "--output", "json",
            "--values", "-", *_common(opts, hooks_off=opts.install_disable_hooks)]
    for on, flag in ((opts.create_namespace, "--create-namespace"), (opts.replace, "--replace"),
                     (opts.install_take_ownership, "--take-ownership")):
        if on:
            argv.append(flag)
    return argv + post_render


def upgrade(release: str, chart: str, namespace: str, opts: Resolved, *,
            post_render: list[str], dry_run: bool = False) -> list[str]:
    """`helm upgrade` of an existing release; `dry_run` renders with cluster lookups."""
    argv = ["upgrade", release, chart, "--namespace", namespace, "--output", "json",
            "--values", "-", "--history-max", str(opts.max_history),
            *_common(opts, hooks_off=opts.upgrade_disable_hooks)]
    for on, flag in ((opts.force, "--force"), (opts.reset_values, "--reset-values"),
                     (opts.reuse_values, "--reuse-values"),
                     (opts.reset_then_reuse_values, "--reset-then-reuse-values"),
                     (opts.cleanup_on_fail, "--cleanup-on-fail"),
                     (opts.sub_notes, "--render-subchart-notes"),
                     (opts.upgrade_take_ownership, "--take-ownership")):
        if on:
            argv.append(flag)
    if dry_run:
        # "server": `lookup` sees the cluster, as in a real upgrade (kserve-crd's
        # conditional CRD only drops out of the manifest when the lookup finds it).
        argv.append("--dry-run=server")
    return argv + post_render


def rollback(release: str, namespace: str, opts: Resolved) -> list[str]:
    """`helm rollback` to the previous revision (what an interrupted upgrade replaced)."""
    return ["rollback", release, "--namespace", namespace,
            "--timeout", describe_timeout(opts.timeout)]


def uninstall(release: str, namespace: str, opts: Resolved) -> list[str]:
    argv = ["uninstall", release, "--namespace", namespace,
            "--timeout", describe_timeout(opts.timeout)]
    if opts.keep_history:
        argv.append("--keep-history")
    if opts.uninstall_disable_hooks:
        argv.append("--no-hooks")
    if opts.deletion_propagation:
        argv += ["--cascade", opts.deletion_propagation]
    return argv
