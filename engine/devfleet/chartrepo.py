"""A loopback Helm chart repository: our stand-in charts, or a folder of real ones.

Used by the demo, the tests and the benchmarks, with the controller's chart
mirror map pointing the catalog's upstream URLs here: the charts carry the
upstream names and versions, so nothing else changes when offline. Stand-ins
are packaged and indexed by the real helm binary; a folder that already is a
Helm repository (the real upstream charts, `real_charts()`) is served as it is.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import yaml

from engine.devfleet import testbin

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "tests" / "charts"
CATALOG = ROOT / "catalog"
REAL_CHARTS_ENV = "FLOTILLA_CHARTS"


def real_charts() -> Path | None:
    """The folder of real upstream charts: $FLOTILLA_CHARTS, else ../shared/charts."""
    configured = os.environ.get(REAL_CHARTS_ENV)
    folder = Path(configured) if configured else ROOT.parent / "shared" / "charts"
    return folder if (folder / "index.yaml").is_file() else None


def catalog_upstreams(catalog: Path = CATALOG) -> list[str]:
    """Every chart repository the catalog names: what an offline mirror map must cover."""
    urls: set[str] = set()
    for path in sorted(catalog.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for version in ((doc or {}).get("spec") or {}).get("versions") or []:
                urls.add(str(version["chart"]["repositoryURL"]))
    return sorted(urls)


class ChartRepo:
    """Serves `charts` on loopback: chart folders are packaged first, a repository as is."""

    def __init__(self, workdir: Path, charts: Path = CHARTS) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        # A folder with an index.yaml is already a repository (relative URLs): serve it.
        self.packaged = not (charts / "index.yaml").is_file()
        served = self.dir if self.packaged else charts
        helm = str(testbin.path() / "helm")
        if self.packaged:
            for chart in sorted(p for p in charts.iterdir() if (p / "Chart.yaml").exists()):
                subprocess.run([helm, "package", str(chart), "-d", str(self.dir)], check=True,
                               capture_output=True)
        handler = functools.partial(_QuietHandler, directory=str(served))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.packaged:
            subprocess.run([helm, "repo", "index", str(self.dir), "--url", self.url],
                           check=True, capture_output=True)
        self.hits: list[str] = []
        self.server.hits = self.hits  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def mirror_flags(self) -> list[str]:
        """`--chart-mirror UPSTREAM=HERE` for every repository of the catalog."""
        flags: list[str] = []
        for upstream in catalog_upstreams():
            flags += ["--chart-mirror", f"{upstream}={self.url}"]
        return flags

    def mirrors(self) -> dict[str, str]:
        """UPSTREAM -> HERE for every repository of the catalog."""
        return {upstream: self.url for upstream in catalog_upstreams()}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
