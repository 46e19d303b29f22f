"""Cluster facts from Nodes: what a node digest keeps, and the totals reported in status."""

from __future__ import annotations

from typing import Any

from engine import facts


def _node(gpus: str | None = None, product: str | None = None, **extra: Any) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": "n"}
    if product:
        labels["nvidia.com/gpu.product"] = product
    capacity = {"cpu": "8"}
    if gpus is not None:
        capacity["nvidia.com/gpu"] = gpus
    return {"metadata": {"name": "n", "labels": labels, **extra},
            "status": {"capacity": capacity, "conditions": [{"type": "Ready"}]}}


def test_a_digest_ignores_what_facts_do_not_read() -> None:
    assert facts.digest(_node("2", "A100")) == ("A100", 2)
    # A heartbeat (conditions, resourceVersion) changes nothing facts read.
    beat = _node("2", "A100", resourceVersion="99")
    beat["status"]["conditions"] = [{"type": "Ready", "lastHeartbeatTime": "later"}]
    assert facts.digest(beat) == facts.digest(_node("2", "A100"))
    assert facts.digest(_node()) == ("", 0)
    assert facts.digest(_node("1")) == ("unknown", 1)  # GPUs without a product label
    assert facts.digest(_node("lots")) == ("", 0)  # not a count we can read


def test_facts_total_the_digests() -> None:
    nodes = [facts.digest(n) for n in (_node("2", "A100"), _node("4", "A100"), _node("1", "H100"),
                                       _node())]
    assert facts.facts(nodes) == {"nodes": 4, "gpuNodes": 3, "gpus": {"A100": 6, "H100": 1},
                                  "gpuTotal": 7}
    assert facts.facts([]) == {"nodes": 0, "gpuNodes": 0, "gpus": {}, "gpuTotal": 0}


def test_facts_gone_are_written_as_null() -> None:
    """Status is merge-patched: a GPU product no node has any more must be named to go."""
    from engine.controller.clusters import _gone_as_null

    old = {"nodes": 2, "gpus": {"A100": 2, "H100": 1}, "gpuTotal": 3}
    new = {"nodes": 1, "gpus": {"A100": 2}, "gpuTotal": 2}
    assert _gone_as_null(old, new) == {"nodes": 1, "gpus": {"A100": 2, "H100": None},
                                       "gpuTotal": 2}
    assert _gone_as_null(None, new) == new  # nothing written before: nothing to remove
    assert _gone_as_null(new, new) == new  # converged: no nulls, so no write
