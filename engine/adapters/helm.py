"""Helm releases on workload clusters, through the real helm binary via pyhelm3.

Used by the ClusterSummary reconciler. Two jobs:

* `ChartCache` fetches each (repository, chart, version) once into a local
  cache (`~/.cache/flotilla/charts`), not once per cluster, applying the
  chart mirror map (`UPSTREAM=LOCAL`) first so air-gapped sites and the
  tests serve charts from their own repository.
* `Releases` installs, upgrades and uninstalls releases on one cluster.
  pyhelm3's `Client()` runs `helm version` synchronously, so clients are built
  once per cluster and kubeconfig, never per call; helm's own failures are
  translated here into the engine's typed errors.

Install and upgrade are told apart before helm runs (`helm status`), because
their options differ and because a failed *install* must be retried as an
install: `helm upgrade --install` over a release whose first revision failed
runs an upgrade, which skips the install-only hooks that made it fail. A
release a killed helm left pending-* is undone first (`Releases._unlock`). Every
install and upgrade post-renders through `engine.adapters.postrender`, which
annotates the chart's CRDs `helm.sh/resource-policy: keep`, unless the
profile set `allowCRDDeletion`, and runs the profile's patches,
extraLabels and extraAnnotations over the chart's objects.

Every helm process of the controller (pulls, status, installs, upgrades)
waits for one of `MAX_PROCESSES` slots (`--max-helm`): each is a Go program
that takes a core while it renders, and on a small machine a fleet-wide
rollout would otherwise start hundreds at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyhelm3
import pyhelm3.errors
import yaml

from engine import errors
from engine.adapters import helmargs, kubeconfig, postrender, redaction
from engine.model.helmopts import HelmOptions, Resolved

log = logging.getLogger("flotilla.helm")

MAX_PROCESSES = 4  # default of --max-helm: twice the cores of the machine we measure on
_slots: asyncio.Semaphore | None = None


def limit_processes(count: int) -> None:
    """At most `count` helm processes at once from now on (call before any runs)."""
    global _slots
    _slots = asyncio.Semaphore(max(1, count))


def _slot() -> asyncio.Semaphore:
    global _slots
    if _slots is None:
        _slots = asyncio.Semaphore(MAX_PROCESSES)
    return _slots


@dataclass(frozen=True)
class ChartCoordinates:
    repository_url: str
    chart_name: str
    chart_version: str


def mirrored(url: str, mirrors: Mapping[str, str]) -> str:
    """Apply the longest matching UPSTREAM prefix of the mirror map."""
    for upstream in sorted(mirrors, key=len, reverse=True):
        if url.rstrip("/") == upstream.rstrip("/") or url.startswith(upstream.rstrip("/") + "/"):
            return mirrors[upstream].rstrip("/") + url[len(upstream.rstrip("/")):]
    return url


class ChartCache:
    """Local unpacked charts, fetched once per (repository, chart, version)."""

    def __init__(self, root: Path, helm: Path, mirrors: Mapping[str, str]) -> None:
        self.root = root
        self.helm = helm
        self.mirrors = dict(mirrors)
        self.fetches = 0
        self._locks: dict[str, asyncio.Lock] = {}

    def set_mirrors(self, mirrors: Mapping[str, str]) -> None:
        self.mirrors = dict(mirrors)

    async def ensure(self, chart: ChartCoordinates) -> Path:
        url = mirrored(chart.repository_url, self.mirrors)
        key = hashlib.sha256(f"{url}|{chart.chart_name}|{chart.chart_version}".encode())
        target = self.root / key.hexdigest()[:20]
        lock = self._locks.setdefault(str(target), asyncio.Lock())
        async with lock:
            found = next(target.glob("*/Chart.yaml"), None) if target.exists() else None
            if found is not None:
                return found.parent
            await self._pull(url, chart, target)
            self.fetches += 1
            found = next(target.glob("*/Chart.yaml"), None)
            if found is None:
                raise errors.NonRetriableError(
                    f"chart {chart.chart_name} {chart.chart_version} from {url} has no Chart.yaml",
                    reason="ChartInvalid")
            return found.parent

    async def _pull(self, url: str, chart: ChartCoordinates, target: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="pull-", dir=self.root))
        if url.startswith("oci://"):
            ref = [f"{url.rstrip('/')}/{chart.chart_name}"]
        else:
            ref = [chart.chart_name, "--repo", url]
        argv = [str(self.helm), "pull", *ref, "--version", chart.chart_version,
                "--untar", "--untardir", str(tmp)]
        async with _slot():
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, stderr = await proc.communicate()
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            text = stderr.decode(errors="replace").strip()
            lowered = text.lower()
            if "not found" in lowered or "no chart version" in lowered or "404" in lowered:
                raise errors.NonRetriableError(
                    f"chart {chart.chart_name} version {chart.chart_version} not found in {url}: "
                    f"{text}", reason="ChartNotFound")
            raise errors.RetriableError(f"fetching chart {chart.chart_name} from {url}: {text}",
                                        reason="ChartFetchFailed", delay=10)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)


@dataclass(frozen=True)
class ReleaseState:
    name: str
    namespace: str
    revision: int
    status: str
    chart: str
    # The revision's rendered objects (post-rendered, without hooks), as helm stores them.
    manifest: str = field(default="", repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReleaseState:
        """From helm's release JSON (`status -o json`, `install/upgrade -o json`)."""
        meta = (data.get("chart") or {}).get("metadata") or {}
        return cls(name=str(data.get("name", "")), namespace=str(data.get("namespace", "")),
                   revision=int(data.get("version") or 0),
                   status=str((data.get("info") or {}).get("status", "")),
                   chart=f"{meta.get('name')}-{meta.get('version')}",
                   manifest=str(data.get("manifest") or ""))

    @property
    def failed_install(self) -> bool:
        """Helm's first revision failed: nothing was ever deployed from it."""
        return self.revision == 1 and self.status == "failed"

    @property
    def interrupted(self) -> bool:
        """Left mid-operation (pending-install/-upgrade/-rollback): helm refuses the next one."""
        return self.status.startswith("pending-")


class Releases:
    """Helm operations on one workload cluster."""

    def __init__(self, kubeconfig_text: str, workdir: Path, helm: Path) -> None:
        # `workdir` is the connection's private directory (0700); the file is 0600 from
        # its creation on and goes away with close().
        workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.kubeconfig = kubeconfig.write_private(workdir / "kubeconfig", kubeconfig_text)
        # Reads (status, get manifest) only; installs, upgrades and uninstalls pass the
        # timeout of their resolved options.
        self.client = pyhelm3.Client(executable=str(helm), kubeconfig=self.kubeconfig,
                                     default_timeout="2m")
        # pyhelm3 runs every helm process through its command's run(): that is where a
        # process waits for its slot, whichever pyhelm3 call started it.
        command = self.client._command
        unlimited = command.run

        async def run(argv: list[str], input: bytes | None = None) -> bytes:
            async with _slot():
                out: bytes = await unlimited(argv, input)
                return out

        setattr(command, "run", run)  # noqa: B010 - an instance's method, replaced

    def close(self) -> None:
        self.kubeconfig.unlink(missing_ok=True)

    async def _run(self, argv: list[str], what: str, values: Mapping[str, Any] | None = None,
                   ) -> bytes:
        try:
            stdin = None if values is None else json.dumps(dict(values)).encode()
            out: bytes = await self.client._command.run(argv, stdin)
            return out
        except pyhelm3.errors.Error as exc:
            raise _translate(exc, what) from exc

    async def current(self, *, release: str, namespace: str) -> ReleaseState | None:
        """The release's latest revision (failed ones too), None when there is none."""
        try:
            out = await self._run(["status", release, "--namespace", namespace,
                                   "--output", "json"], f"release {namespace}/{release}")
        except errors.FlotillaError as exc:
            if "release: not found" in str(exc).lower():
                return None
            raise
        state = ReleaseState.from_json(json.loads(out))
        # Uninstalled with --keep-history: only history is left; installing re-uses the name.
        return None if state.status == "uninstalled" else state

    async def install_or_upgrade(
        self, *, release: str, namespace: str, chart_dir: Path, values: Mapping[str, Any],
        options: HelmOptions | None = None, on_start: Callable[[str], None] | None = None,
        before_upgrade: Callable[[ReleaseState], Awaitable[None]] | None = None,
        transform: Mapping[str, Any] | None = None,
    ) -> ReleaseState:
        """Install, or upgrade when a release exists; `on_start` hears which, just before.

        `before_upgrade` sees the current revision first (its manifest included).
        `transform` (the JSON form of `patches.Transform`) is run by the post-renderer.
        """
        opts = (options or HelmOptions()).resolved()
        what = f"release {namespace}/{release}"
        key = (str(self.kubeconfig), namespace, release)
        if key in _RUNNING:
            raise errors.RetriableError(f"{what}: a helm operation on it is running",
                                        reason="HelmBusy", delay=5)
        _RUNNING.add(key)
        try:
            return await self._install_or_upgrade(
                release=release, namespace=namespace, chart_dir=chart_dir, values=values,
                opts=opts, on_start=on_start, before_upgrade=before_upgrade,
                transform=transform)
        finally:
            _RUNNING.discard(key)

    async def _install_or_upgrade(
        self, *, release: str, namespace: str, chart_dir: Path, values: Mapping[str, Any],
        opts: Resolved, on_start: Callable[[str], None] | None,
        before_upgrade: Callable[[ReleaseState], Awaitable[None]] | None,
        transform: Mapping[str, Any] | None,
    ) -> ReleaseState:
        what = f"release {namespace}/{release}"
        state = await self.current(release=release, namespace=namespace)
        if state is not None and state.interrupted:
            state = await self._unlock(state, opts)
        if state is not None and state.failed_install:
            # Retry a failed install as an install, so its install hooks run (and fail
            # visibly) again; an upgrade would skip them and hide the failure.
            await self._run(helmargs.uninstall(release, namespace, opts), what)
            state = None
        if state is not None and before_upgrade is not None:
            await before_upgrade(state)
        verb = "install" if state is None else "upgrade"
        with self._transform_file(transform) as path:
            render = postrender.flags(keep_crds=not opts.allow_crd_deletion, transform=path)
            build = helmargs.install if state is None else helmargs.upgrade
            argv = build(release, str(chart_dir), namespace, opts, post_render=render)
            if on_start is not None:
                on_start(verb)
            out = await self._run(argv, f"helm {verb} of {what}", values)
        return ReleaseState.from_json(_json_object(out))

    async def _unlock(self, state: ReleaseState, opts: Resolved) -> ReleaseState | None:
        """Undo an operation a dead helm left pending; the release as it is afterwards.

        A helm killed mid-run (with the controller that ran it) leaves the release
        pending-*, and every later install or upgrade fails with "another operation
        is in progress", for ever. Releases are claimed by one profile and worked on
        by one controller (the Lease), one operation at a time (`_RUNNING`), so a
        pending state found here is such a leftover: an interrupted install is
        uninstalled, an interrupted upgrade or rollback rolled back to the revision
        before it, and the caller goes on from there.
        """
        what = f"release {state.namespace}/{state.name}"
        log.warning("%s: helm left it %s at revision %d (interrupted); undoing that first",
                    what, state.status, state.revision)
        if state.status == "pending-install" or state.revision <= 1:
            await self._run(helmargs.uninstall(state.name, state.namespace, opts), what)
        else:
            await self._run(helmargs.rollback(state.name, state.namespace, opts), what)
        return await self.current(release=state.name, namespace=state.namespace)

    @contextlib.contextmanager
    def _transform_file(self, transform: Mapping[str, Any] | None) -> Iterator[Path | None]:
        """The post-renderer's transform as a file in the private work directory (0600)."""
        if not transform:
            yield None
            return
        fd, name = tempfile.mkstemp(prefix="transform-", suffix=".json",
                                    dir=self.kubeconfig.parent)
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(dict(transform), out)
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)

    async def render_upgrade(
        self, *, release: str, namespace: str, chart_dir: Path, values: Mapping[str, Any],
        options: HelmOptions | None = None,
    ) -> list[dict[str, Any]]:
        """The objects an upgrade would deploy now (a server-side dry run: lookups work)."""
        opts = (options or HelmOptions()).resolved()
        argv = helmargs.upgrade(release, str(chart_dir), namespace, opts, post_render=[],
                                dry_run=True)
        out = await self._run(argv, f"dry-run upgrade of release {namespace}/{release}", values)
        manifest = str(_json_object(out).get("manifest") or "")
        return [doc for doc in yaml.safe_load_all(manifest) if isinstance(doc, dict)]

    async def revision(self, *, release: str, namespace: str) -> int | None:
        try:
            rev = await self.client.get_current_revision(release, namespace=namespace)
        except pyhelm3.errors.ReleaseNotFoundError:
            return None
        except pyhelm3.errors.Error as exc:
            raise _translate(exc, f"release {namespace}/{release}") from exc
        return int(rev.revision)

    async def values(self, *, release: str, namespace: str) -> dict[str, Any]:
        """The user-supplied values of the current revision."""
        try:
            rev = await self.client.get_current_revision(release, namespace=namespace)
            return dict(await rev.values())
        except pyhelm3.errors.Error as exc:
            raise _translate(exc, f"release {namespace}/{release}") from exc

    async def chart(self, *, release: str, namespace: str) -> str:
        """"<chart>-<version>" of the current revision."""
        try:
            rev = await self.client.get_current_revision(release, namespace=namespace)
            meta = await rev.chart_metadata()
        except pyhelm3.errors.Error as exc:
            raise _translate(exc, f"release {namespace}/{release}") from exc
        return f"{meta.name}-{meta.version}"

    async def manifest(self, *, release: str, namespace: str) -> list[dict[str, Any]]:
        """The objects of the release's current revision, as rendered by Helm."""
        try:
            rev = await self.client.get_current_revision(release, namespace=namespace)
            return [dict(r) for r in await rev.resources() if isinstance(r, dict)]
        except pyhelm3.errors.ReleaseNotFoundError:
            return []
        except pyhelm3.errors.Error as exc:
            raise _translate(exc, f"release {namespace}/{release}") from exc

    async def uninstall(self, *, release: str, namespace: str,
                        options: HelmOptions | None = None) -> None:
        opts = (options or HelmOptions()).resolved()
        try:
            await self._run(helmargs.uninstall(release, namespace, opts),
                            f"uninstalling {namespace}/{release}")
        except errors.FlotillaError as exc:
            if "release: not found" not in str(exc).lower():
                raise


# Releases (helm's kubeconfig, namespace, name) an install or upgrade of this process is
# working on: a pending state of one of these is that operation, not a leftover.
_RUNNING: set[tuple[str, str, str]] = set()


def _json_object(out: bytes) -> dict[str, Any]:
    """The JSON document of helm's output (helm may print OCI pull notes before it)."""
    text = out.decode(errors="replace")
    start = text.find("{")
    if start < 0:
        raise errors.RetriableError(f"helm printed no JSON: {text[:500]}", reason="HelmFailed")
    data = json.loads(text[start:])
    return data if isinstance(data, dict) else {}


# helm v3 says "failed post-install: ..." for install hooks and "pre-upgrade hooks failed: ..."
# for upgrade and delete hooks.
_HOOK_FAILED = re.compile(r"failed (pre|post)-(install|upgrade|delete|rollback)\b"
                          r"|(pre|post)-(install|upgrade|delete|rollback) hooks failed")


def _translate(exc: pyhelm3.errors.Error, what: str) -> errors.FlotillaError:
    stderr = getattr(exc, "stderr", b"")
    text = (stderr.decode(errors="replace") if isinstance(stderr, bytes) else str(stderr)).strip()
    # helm runs the kubeconfig's exec plugin too; whatever that printed may be in here.
    text = redaction.redact(text.removeprefix("Error: ").strip() or str(exc))
    lowered = text.lower()
    if _HOOK_FAILED.search(lowered):
        # "failed post-install: timed out waiting for the condition", "... job failed:
        # BackoffLimitExceeded": a hook, not the chart, failed. The controller adds the
        # name of the hook Job it saw (helm does not always say).
        timed_out = "timed out" in lowered or "deadline exceeded" in lowered
        return errors.RetriableError(f"{what}: {text}", reason="HookTimeout" if timed_out
                                     else "HookFailed", delay=10)
    if "values don't meet the specifications of the schema" in lowered:
        return errors.NonRetriableError(f"{what}: values violate the chart's schema: {text}",
                                        reason="ValuesSchemaViolation")
    if isinstance(exc, pyhelm3.errors.FailedToRenderChartError) or "render" in lowered \
            or "execution error" in lowered or "parse error" in lowered:
        return errors.NonRetriableError(f"{what}: chart failed to render: {text}",
                                        reason="ChartRenderFailed")
    if isinstance(exc, pyhelm3.errors.ConnectionError) or "connection refused" in lowered:
        return errors.RetriableError(f"{what}: cluster unreachable: {text}",
                                     reason="Unreachable", delay=5)
    if isinstance(exc, pyhelm3.errors.InvalidResourceError):
        return errors.NonRetriableError(f"{what}: {text}", reason="InvalidResource")
    if "another operation" in lowered:
        return errors.RetriableError(f"{what}: {text}", reason="HelmBusy", delay=5)
    return errors.RetriableError(f"{what}: {text}", reason="HelmFailed", delay=10)
