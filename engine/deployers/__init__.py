"""Deployers: one module per kind of thing deployed, behind one interface (`base.Deployer`).

Used by the summary reconciler (deploy, remove, health), drift detection
(what to watch, how to correct) and `flotilla plan` (what would happen).
The table below is the only place that knows which kinds exist, in the
manner of Sveltos's feature table: a new kind is a module and a row here.
Deployers reach workload clusters through `engine.adapters` only and never
import the controller.
"""

from __future__ import annotations

from engine import inventory
from engine.deployers import base, helm, kustomize, manifests

_TABLE: dict[str, base.Deployer] = {
    inventory.HELM: helm.Helm(),
    inventory.OBJECT: manifests.Manifests(),
    inventory.KUSTOMIZE: kustomize.Kustomize(),
}


def for_key(key: inventory.Key) -> base.Deployer:
    """The deployer of a recorded or desired key."""
    return _TABLE[inventory.kind_of(key)]


def for_item(item: inventory.DesiredItem) -> base.Deployer:
    return for_key(item.key)
