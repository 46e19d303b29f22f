"""`flotilla catalog lint`: pull every catalog version's chart, check it, report per finding.

Used by the CLI and its end-to-end test. The I/O half of `catalog_lint` and
`catalog_lint_kinds` (pure): charts are fetched through the Helm adapter's
`ChartCache` (so the chart mirror map applies exactly as in the controller),
read into `ChartInfo`s, and rendered with the real `helm template
--kube-version V --include-crds` twice per version — with the version's
values plus parameter defaults, and with every parameter set to a
non-default sample — so that a parameter that only acts above its default
(timeSlicingReplicas) is rendered too. Health-check kinds are matched against
what both renders produce.

Output: one line per finding, `catalog/<file>: <service> <version>:
<severity>: <what>`, an `ok` line for each version without errors or
warnings, and a summary; the exit code is 1 when anything is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import http.server
import io
import json
import os
import tarfile
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from engine import catalog, catalog_lint, catalog_lint_kinds, errors, render
from engine.adapters import helm as helm_adapter
from engine.model import types

KUBE_VERSION = "v1.37.2"


@dataclasses.dataclass(frozen=True, slots=True)
class Line:
    file: str
    service: str
    version: str
    severity: str  # error, warning, note or ok
    message: str

    def __str__(self) -> str:
        who = f"{self.service} {self.version}".strip()
        return f"{self.file}: {who}: {self.severity}: {self.message}"


@dataclasses.dataclass
class Report:
    lines: list[Line]
    services: int
    versions: int
    kube_version: str

    def count(self, severity: str) -> int:
        return sum(1 for line in self.lines if line.severity == severity)

    @property
    def exit_code(self) -> int:
        return 1 if self.count("error") else 0

    def summary(self) -> str:
        return (f"catalog lint: {self.services} services, {self.versions} versions:"
                f" {self.count('error')} errors, {self.count('warning')} warnings,"
                f" {self.count('note')} notes (helm template --kube-version {self.kube_version})")


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    file: str
    spec: types.CatalogServiceSpec


def load(directory: Path) -> tuple[list[Entry], list[Line]]:
    """The catalog's CatalogServices, and an error line for each document that does not parse."""
    entries: list[Entry] = []
    problems: list[Line] = []
    for path in sorted(directory.glob("*.yaml")):
        shown = _shown(path)
        try:
            documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as error:
            problems.append(Line(shown, "", "", "error", f"not valid YAML: {error}"))
            continue
        for document in documents:
            if not isinstance(document, dict) or document.get("kind") != "CatalogService":
                continue
            try:
                entries.append(Entry(shown, types.CatalogServiceSpec.from_object(document)))
            except errors.SpecError as error:
                name = str((document.get("metadata") or {}).get("name", ""))
                problems.append(Line(shown, name, "", "error", str(error)))
    return entries, problems


def upstreams(entries: Sequence[Entry]) -> list[str]:
    return sorted({v.chart.repository_url for e in entries for v in e.spec.versions})


async def lint(directory: Path, *, mirrors: Mapping[str, str], helm: Path,
               kube_version: str = KUBE_VERSION, charts_folder: Path | None = None) -> Report:
    entries, lines = load(directory)
    with contextlib.ExitStack() as stack:
        mirrors = dict(mirrors)
        if charts_folder is not None:
            url = stack.enter_context(serve(charts_folder))
            mirrors = {**{upstream: url for upstream in upstreams(entries)}, **mirrors}
        cache = helm_adapter.ChartCache(Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="flotilla-lint-"))), helm, mirrors)
        gate = asyncio.Semaphore(2)  # helm template is CPU-bound; two at a time

        async def one(entry: Entry, version: types.CatalogVersion) -> list[Line]:
            async with gate:
                return await _lint_version(entry, version, cache=cache, helm=helm,
                                           kube_version=kube_version)

        jobs = [one(entry, version) for entry in entries for version in entry.spec.versions]
        for found in await asyncio.gather(*jobs):
            lines += found
    return Report(lines, services=len(entries),
                  versions=sum(len(entry.spec.versions) for entry in entries),
                  kube_version=kube_version)


async def _lint_version(entry: Entry, version: types.CatalogVersion, *,
                        cache: helm_adapter.ChartCache, helm: Path,
                        kube_version: str) -> list[Line]:
    spec = entry.spec

    def line(severity: str, message: str) -> Line:
        return Line(entry.file, spec.name, version.version, severity, message)

    chart = version.chart
    try:
        chart_dir = await cache.ensure(helm_adapter.ChartCoordinates(
            chart.repository_url, chart.chart_name, chart.chart_version))
        info = await asyncio.to_thread(read_chart, chart_dir)
    except errors.FlotillaError as error:
        return [line("error", str(error))]
    except (OSError, ValueError, yaml.YAMLError) as error:  # JSONDecodeError is a ValueError
        return [line("error", f"chart {chart.chart_name} {chart.chart_version} is unreadable:"
                     f" {type(error).__name__}: {error}")]
    findings = catalog_lint.values_findings(info, version.values)
    for parameter in spec.parameters:
        findings += catalog_lint.parameter_findings(info, parameter)

    rendered: list[dict[str, Any]] = []
    exercised = {p.name: catalog_lint.exercised_value(p) for p in spec.parameters}
    renders: list[tuple[str, dict[str, Any]]] = [("default values", {})]
    if exercised:
        renders.append(("parameters set", exercised))
    for label, parameters in renders:
        try:
            ref = types.ServiceRef(name=spec.name, parameters=parameters)
            values = render.deep_merge(
                version.values, catalog.parameter_values(spec, ref, field="spec"))
            rendered += await helm_template(helm, chart_dir, release=spec.release_name,
                                            namespace=spec.release_namespace, values=values,
                                            kube_version=kube_version)
        except errors.FlotillaError as error:
            shown = ", ".join(f"{k}={v!r}" for k, v in parameters.items()) or "defaults"
            findings.append(catalog_lint.Finding(
                "error", f"does not render with {label} ({shown}): {error}"))
    if rendered:
        for check in spec.health_checks:
            findings += catalog_lint_kinds.health_check_findings(
                check, rendered, release_namespace=spec.release_namespace)

    lines = [line(f.severity, f.message) for f in _ordered(findings)]
    if not any(f.severity in ("error", "warning") for f in findings):
        objects = {(o.get("apiVersion"), o.get("kind"), str((o.get("metadata") or {}).get(
            "namespace")), str((o.get("metadata") or {}).get("name"))) for o in rendered}
        kinds = len({key[:2] for key in objects})
        lines.append(line("ok", f"chart {chart.chart_name} {chart.chart_version}:"
                          f" {len(spec.parameters)} parameters, {len(spec.health_checks)}"
                          f" health checks; renders {len(objects)} objects of {kinds} kinds"))
    return lines


def _ordered(findings: Sequence[catalog_lint.Finding]) -> list[catalog_lint.Finding]:
    rank = {"error": 0, "warning": 1, "note": 2}
    unique = list(dict.fromkeys(findings))
    return sorted(unique, key=lambda finding: rank[finding.severity])


def read_chart(chart_dir: Path) -> catalog_lint.ChartInfo:
    """A chart folder (as `helm pull --untar` leaves it) read into a ChartInfo, subcharts too."""
    files = {str(path.relative_to(chart_dir)): path.read_bytes()
             for path in sorted(chart_dir.rglob("*")) if path.is_file() and _wanted(
                 path.relative_to(chart_dir).parts)}
    return chart_from_files(files, name=chart_dir.name)


def chart_from_files(files: Mapping[str, bytes], *, name: str) -> catalog_lint.ChartInfo:
    """A ChartInfo from a chart's files by relative path; subcharts are folders or archives."""
    meta = yaml.load(files.get("Chart.yaml", b"{}"), Loader=_RenderedLoader) or {}
    values = yaml.load(files.get("values.yaml", b""), Loader=_RenderedLoader) or {}
    schema = json.loads(files["values.schema.json"]) if "values.schema.json" in files else None
    templates = {path: data.decode(errors="replace") for path, data in files.items()
                 if path.startswith("templates/")}
    nested: dict[str, dict[str, bytes]] = {}
    for path, data in files.items():
        parts = path.split("/")
        if parts[0] == "charts" and len(parts) > 2:
            nested.setdefault(parts[1], {})["/".join(parts[2:])] = data
        elif parts[0] == "charts" and len(parts) == 2 and parts[1].endswith(".tgz"):
            nested[parts[1].removesuffix(".tgz")] = _archive_files(data)
    subcharts: dict[str, catalog_lint.ChartInfo] = {}
    for folder, sub_files in sorted(nested.items()):
        if "Chart.yaml" not in sub_files:
            continue
        info = chart_from_files(sub_files, name=folder)
        # A dependency may alias the chart (even twice): its values live under the alias.
        aliases = [str(dep.get("alias") or dep.get("name"))
                   for dep in meta.get("dependencies") or [] if dep.get("name") == info.name]
        for key in aliases or [info.name]:
            subcharts[key] = info
    return catalog_lint.ChartInfo(name=str(meta.get("name", name)),
                                  version=str(meta.get("version", "")), values=values,
                                  schema=schema, templates=templates, subcharts=subcharts)


def _wanted(parts: tuple[str, ...]) -> bool:
    """Files the checks read: metadata, values, schema, templates, and those of subcharts."""
    if parts[0] == "charts" and len(parts) > 2:
        return _wanted(parts[2:])
    return parts[0] in ("Chart.yaml", "values.yaml", "values.schema.json", "templates") or (
        parts[0] == "charts" and parts[-1].endswith(".tgz"))


def _archive_files(data: bytes) -> dict[str, bytes]:
    """The files of a packaged chart, by path below its top folder."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            parts = member.name.split("/")[1:]
            extracted = archive.extractfile(member) if member.isfile() else None
            if parts and extracted is not None and _wanted(tuple(parts)):
                files["/".join(parts)] = extracted.read()
    return files


async def helm_template(helm: Path, chart_dir: Path, *, release: str, namespace: str,
                        values: Mapping[str, Any], kube_version: str) -> list[dict[str, Any]]:
    """The objects `helm template` renders (CRDs included, test hooks skipped)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="values-") as file:
        json.dump(dict(values), file)
        file.flush()
        proc = await asyncio.create_subprocess_exec(
            str(helm), "template", release, str(chart_dir), "--namespace", namespace,
            "--kube-version", kube_version, "--include-crds", "--skip-tests",
            "--values", file.name,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=300)
        except TimeoutError:
            proc.kill()
            raise errors.NonRetriableError("helm template timed out after 300 s",
                                           reason="ChartRenderFailed") from None
    if proc.returncode != 0:
        text = " ".join(err.decode(errors="replace").split()).removeprefix("Error: ")
        raise errors.NonRetriableError(text[:600], reason="ChartRenderFailed")
    try:
        documents = await asyncio.to_thread(
            lambda: list(yaml.load_all(out.decode(), Loader=_RenderedLoader)))
    except yaml.YAMLError as error:
        raise errors.NonRetriableError(f"helm template output is not YAML: {error}",
                                       reason="ChartRenderFailed") from None
    objects: list[dict[str, Any]] = []
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "List":
            objects += [item for item in document.get("items") or [] if isinstance(item, dict)]
        elif isinstance(document, dict) and document.get("kind"):
            objects.append(document)
    return objects


class _RenderedLoader(yaml.CSafeLoader):
    """libyaml's safe loader (the pure-Python one needs ~100 s for kube-prometheus-stack's
    CRDs), except that a bare `=` is the string "=" as in Go's YAML, not a `value` tag
    PyYAML cannot build: the Prometheus Operator CRDs list it as an enum value."""


def _plain_scalar(loader: yaml.CSafeLoader, node: yaml.Node) -> Any:
    return loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None


_RenderedLoader.add_constructor("tag:yaml.org,2002:value", _plain_scalar)


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve a Helm repository folder (index.yaml + packages) on loopback; yields its URL."""
    if not (folder / "index.yaml").exists():
        raise errors.SpecError(f"{folder} is not a Helm repository (no index.yaml)",
                               field="--charts")
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _shown(path: Path) -> str:
    """The path as the user would type it: relative to the working directory when inside it."""
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


def run(directory: Path, *, mirrors: Mapping[str, str], helm: Path,
        kube_version: str = KUBE_VERSION, charts_folder: Path | None = None) -> int:
    """Print the report; 1 when anything is an error."""
    report = asyncio.run(lint(directory, mirrors=mirrors, helm=helm, kube_version=kube_version,
                              charts_folder=charts_folder))
    for line in report.lines:
        print(line)
    print(report.summary())
    return report.exit_code
