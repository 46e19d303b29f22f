"""What the rollout step knows of each matched cluster, built once per version of its inputs.

Used by the rollout step (`engine.controller.rollout_step.assign`) and by
bench/planner.py. One `policy.ClusterState` per matched cluster comes from
its ClusterSummary (assigned and provisioned revision, health and since when,
when it was told to move), its WorkloadCluster (labels, readiness) and the
profile's memory of the revision it failed at.

Why a cache: one cluster's label or readiness change re-decides every profile
selecting it, each over thousands of clusters (issue 13: 10,000 clusters, a
profile of 3,300), and building every state anew cost as much as the decision.
A state is a pure function of those three inputs, so `StateCache` keeps each
profile's states and reuses one while the WorkloadCluster's resourceVersion,
the ClusterSummary's resourceVersion and the failed revision are the ones it
was built from. The API server gives every write a new resourceVersion, so a
changed cluster or summary always builds its state again; a body without a
resourceVersion (made by hand, not read from the API) is never cached. Pure:
no I/O, no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, count
from operator import is_not
from typing import Any

from engine.rollout import bodies, policy

# A cluster's namespace and name.
Key = tuple[str, str]
Body = Mapping[str, Any]

# Stands for "no such object" in a fingerprint; a resourceVersion is never empty.
_ABSENT = ""


# Kept under its old name: the cache and bench/planner.py build states through it.
build = bodies.cluster_state


def _version(body: Mapping[str, Any] | None) -> object:
    """`_ABSENT` for no object, its resourceVersion, or None: not cacheable."""
    if not body:
        return _ABSENT
    return (body.get("metadata") or {}).get("resourceVersion") or None


@dataclass
class _Kept:
    """One profile's last call: its rows, the very bodies read, and the states built."""

    keys: list[Key]
    summaries: list[Body | None]
    clusters: list[Body | None]
    failed_at: dict[str, int]
    states: list[policy.ClusterState]


class StateCache:
    """Each profile's cluster states, reused while what they were built from is unchanged.

    Keeps the states of the last `profiles` profiles asked about (least recently
    used go first), and of each only its last call. The bodies are kept too, so
    while an entry lives no other object can have their identity: the same body
    object means the same input. Unchanged rows in the same order cost two
    pointer comparisons made in C; at fleet scale, reading every body again cost
    as much as building its state.
    """

    def __init__(self, profiles: int = 4096) -> None:
        self._limit = profiles
        self._kept: OrderedDict[Hashable, _Kept] = OrderedDict()
        self.built = 0  # states built rather than reused (tests and the benchmark read it)
        self._cacheable = True  # whether every body of the current call had a version

    def states(self, owner: Hashable, keys: Sequence[Key], summaries: Sequence[Body | None],
               clusters: Sequence[Body | None],
               failed_at: Mapping[str, int]) -> list[policy.ClusterState]:
        """The state of every cluster `keys` names, in that order; `owner` names the profile.

        `summaries[i]` and `clusters[i]` are the ClusterSummary and WorkloadCluster of
        `keys[i]` (None: none yet); `failed_at` maps "namespace/name" to the revision
        that cluster failed at.
        """
        if not len(keys) == len(summaries) == len(clusters):
            raise ValueError("keys, summaries and clusters must be as long")
        kept = self._kept.pop(owner, None)
        self._cacheable = True
        if kept is not None and kept.keys == keys and kept.failed_at == failed_at:
            # The same clusters in the same order: look again only where a body changed.
            out = list(kept.states)
            changed = {*compress(count(), map(is_not, summaries, kept.summaries)),
                       *compress(count(), map(is_not, clusters, kept.clusters))}
            for i in sorted(changed):
                out[i] = self._one(keys[i], summaries[i], clusters[i], failed_at,
                                   (kept.summaries[i], kept.clusters[i], kept.states[i]))
        else:
            old = {} if kept is None else dict(
                zip(kept.keys, zip(kept.summaries, kept.clusters, kept.states, strict=True),
                    strict=True))
            same_failed = kept is not None and kept.failed_at == failed_at
            out = []
            for key, summary, cluster in zip(keys, summaries, clusters, strict=True):
                before = old.get(key)
                if same_failed and before is not None and (
                        before[0] is summary and before[1] is cluster):
                    out.append(before[2])  # the very bodies: no need to look into them
                else:
                    out.append(self._one(key, summary, cluster, failed_at, before))
        if self._cacheable:  # else a body had no resourceVersion: keep nothing
            self._kept[owner] = _Kept(list(keys), list(summaries), list(clusters),
                                      dict(failed_at), out)
            while len(self._kept) > self._limit:
                self._kept.popitem(last=False)
        return out

    def _one(self, key: Key, summary: Body | None, cluster: Body | None,
             failed_at: Mapping[str, int],
             before: tuple[Body | None, Body | None, policy.ClusterState] | None
             ) -> policy.ClusterState:
        """One state: the one built before if built from the same versions, else a new one.

        What was built before was built from bodies that had resourceVersions (else
        nothing was kept), so equal versions mean equal bodies.
        """
        name = f"{key[0]}/{key[1]}"
        failed = failed_at.get(name)
        if before is not None and before[2].failed_revision == failed and (
                (summary is before[0] or _version(summary) == _version(before[0]))
                and (cluster is before[1] or _version(cluster) == _version(before[1]))):
            return before[2]
        self.built += 1
        if _version(summary) is None or _version(cluster) is None:
            self._cacheable = False
        return build(name, summary, cluster, failed)

    def forget(self, owner: Hashable) -> None:
        """Drop a profile's states (it was deleted)."""
        self._kept.pop(owner, None)
