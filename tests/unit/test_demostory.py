"""The demo's profile preparation on plain data: the story's selector, CEL and stages."""

from __future__ import annotations

from pathlib import Path

import yaml

from engine import select
from engine.cli import demostory
from engine.model import types

ROOT = Path(__file__).resolve().parents[2]


def _cluster(gpus: int | None, **labels: str) -> dict[str, object]:
    status = {} if gpus is None else {"facts": {"nodes": 2, "gpuTotal": gpus}}
    return {"metadata": {"namespace": "fleet", "name": "c", "labels": labels},
            "status": status}


def test_profile_selects_by_label_and_gpu_facts_with_canary_stage() -> None:
    docs = [d for d in yaml.safe_load_all((ROOT / "profiles/gpu-inference.yaml").read_text())
            if d]
    before = yaml.safe_dump_all(docs)
    out = demostory.profile_docs(docs)
    assert yaml.safe_dump_all(docs) == before  # the input is left as it was
    spec = next(d for d in out if d["kind"] == "ClusterProfile")["spec"]
    assert spec["clusterSelector"] == {"matchLabels": {"serving": "inference"}}
    assert [s["name"] for s in spec["rollout"]["stages"]] == ["canary", "main"]
    parsed = types.ProfileSpec.from_dict(spec)

    def selected(cluster: dict[str, object]) -> bool:
        return select.explain(parsed, cluster, namespace=None).selected

    assert selected(_cluster(16, serving="inference"))
    assert not selected(_cluster(0, serving="inference"))      # no GPUs
    assert not selected(_cluster(None, serving="inference"))   # facts not read yet
    assert not selected(_cluster(16))                           # not labelled
