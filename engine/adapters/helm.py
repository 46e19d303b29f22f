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
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyhelm3
import pyhelm3.errors
import yaml
from pyhelm3.models import Chart

from engine import errors
from engine.devfleet import testbin


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


class Releases:
    """Helm operations on one workload cluster."""

    def __init__(self, kubeconfig_text: str, workdir: Path, helm: Path | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = workdir / "kubeconfig"
        self.kubeconfig.write_text(kubeconfig_text)
        self.kubeconfig.chmod(0o600)
        executable = str(helm or testbin.path() / "helm")
        self.client = pyhelm3.Client(executable=executable, kubeconfig=self.kubeconfig,
                                     default_timeout="2m")

    async def install_or_upgrade(
        self, *, release: str, namespace: str, chart_dir: Path, values: Mapping[str, Any],
    ) -> ReleaseState:
        metadata = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
        chart = Chart(self.client._command, ref=chart_dir, metadata=metadata)
        try:
            rev = await self.client.install_or_upgrade_release(
                release, chart, dict(values), namespace=namespace, create_namespace=True,
                atomic=False, wait=False)
        except pyhelm3.errors.Error as exc:
            raise _translate(exc, f"release {namespace}/{release}") from exc
        return ReleaseState(name=release, namespace=namespace, revision=rev.revision,
                            status=str(rev.status.value), chart=f"{metadata.get('name')}-"
                            f"{metadata.get('version')}")

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

    async def uninstall(self, *, release: str, namespace: str) -> None:
        try:
            await self.client.uninstall_release(release, namespace=namespace, wait=False)
        except pyhelm3.errors.Error as exc:
            raise _translate(exc, f"uninstalling {namespace}/{release}") from exc


def _translate(exc: pyhelm3.errors.Error, what: str) -> errors.FlotillaError:
    stderr = getattr(exc, "stderr", b"")
    text = (stderr.decode(errors="replace") if isinstance(stderr, bytes) else str(stderr)).strip()
    text = text.removeprefix("Error: ").strip() or str(exc)
    lowered = text.lower()
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
