"""The controller's chart carries exact copies of crds/ and catalog/.

Helm reads only files inside a chart, so deploy/chart/flotilla/crds/ and
files/catalog/ are copies; `make chart-files` (also run by `make crds`)
refreshes them. This test fails when a copy is missing, extra or different.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "chart" / "flotilla"


@pytest.mark.parametrize(("source", "copy"), [("crds", "crds"), ("catalog", "files/catalog")])
def test_chart_copy_matches_the_repository(source: str, copy: str) -> None:
    want = {p.name: p.read_bytes() for p in (ROOT / source).glob("*.yaml")}
    have = {p.name: p.read_bytes() for p in (CHART / copy).glob("*.yaml")}
    assert want, f"no YAML in {source}/"
    stale = sorted(n for n in want.keys() | have.keys() if want.get(n) != have.get(n))
    assert not stale, (f"{CHART.relative_to(ROOT)}/{copy} differs from {source}/ in {stale}:"
                       " run `make chart-files`")
