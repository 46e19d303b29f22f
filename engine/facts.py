"""A workload cluster's facts (node count, GPU products and counts), read from its Nodes.

Pure. Used by `engine.adapters.clusterwatch`, which keeps one small digest per
Node it follows (never the whole Node: thousands of clusters' nodes would
fill the controller's memory), and by the WorkloadCluster reconcile
(`engine.controller.clusters`), which reports `facts()` in status for CEL
selectors to read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
PRODUCT_LABELS = ("nvidia.com/gpu.product", "amd.com/gpu.product")

# (GPU product, GPU count) of one node; the product is "" on a node without GPUs.
NodeDigest = tuple[str, int]


def _count(value: Any) -> int:
    try:
        return max(0, int(str(value or "0")))
    except ValueError:
        return 0  # a quantity such as "1k" is no GPU count we know how to read


def digest(node: Mapping[str, Any]) -> NodeDigest:
    """What facts read from one Node: a change elsewhere (heartbeats) changes nothing."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    capacity = (node.get("status") or {}).get("capacity") or {}
    count = sum(_count(capacity.get(r)) for r in GPU_RESOURCES)
    if not count:
        return "", 0
    product = next((labels[k] for k in PRODUCT_LABELS if labels.get(k)), "unknown")
    return str(product), count


def facts(nodes: Iterable[NodeDigest]) -> dict[str, Any]:
    gpus: Counter[str] = Counter()
    total = gpu_nodes = 0
    for product, count in nodes:
        total += 1
        if count:
            gpu_nodes += 1
            gpus[product] += count
    return {"nodes": total, "gpuNodes": gpu_nodes, "gpus": dict(sorted(gpus.items())),
            "gpuTotal": sum(gpus.values())}
