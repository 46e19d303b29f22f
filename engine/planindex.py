"""Every profile's cluster selection, kept current one change at a time.

Used by the controller's object cache (`engine.controller.store` feeds it every
WorkloadCluster and profile it holds; `engine.controller.profiles` reads the
selections and wakes only the profiles a cluster change touched) and by
`bench/planner.py`. `select.select_clusters` looks at every cluster to answer
one profile; asking it again for every profile whenever any cluster changes
costs profiles x fleet per change. This index answers the same question (same
rules; the unit tests compare it with `select_clusters` on random fleets) with
work proportional to what could have changed:

- `cluster_changed` evaluates, for that one cluster, only the profiles that could
  select it: those whose selector names one of its labels (a matchLabels pair, an
  `In` value, an `Exists` key), those naming it in clusterRefs, those that selected
  it so far, and those no label can rule out (CEL only, NotIn/DoesNotExist only).
  When only its status or spec changed, only the profiles with CEL are asked again.
  Besides those whose selection changed, it reports the profiles still selecting
  the cluster whose plan reads what changed: its readiness (every rollout), the
  labels its rollout stages select by, anything (templateResourceRefs),
  their own or that of a profile they depend on (which goes where they go).
- `profile_changed` evaluates one profile over the clusters carrying the rarest
  label its selector requires (the whole fleet only when nothing narrows it), label
  checks before CEL; CEL programs are compiled once (`select.compile_cel` caches)
  and each cluster is converted to CEL values once per version, for every profile.

Pure: plain dicts in, plain data out; no I/O.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from engine import errors, select
from engine.model import types

ProfileKey = tuple[str, str, str]  # (kind, namespace or "" for a ClusterProfile, name)
ClusterKey = tuple[str, str]  # (namespace, name)
_Pair = tuple[str, str]  # (label key, label value)


@dataclasses.dataclass(frozen=True, slots=True)
class Update:
    """What one change did: whose selection changed, and whose plan it may touch.

    `touched` holds `changed` plus, for a cluster change, the profiles selecting the
    cluster before and after whose plan reads what changed (see the module doc). A
    cluster change that left labels, annotations, spec, status and deletion alone
    touches nobody.
    """

    changed: frozenset[ProfileKey] = frozenset()
    touched: frozenset[ProfileKey] = frozenset()


@dataclasses.dataclass(slots=True)
class Rows:
    """One profile's selection sorted: (namespace, name, reason) rows, their keys and the
    cluster bodies held now, all in the same order (read-only for callers)."""

    rows: tuple[tuple[str, str, str], ...]
    keys: tuple[ClusterKey, ...]
    bodies: list[Mapping[str, Any]]  # replaced in place when a selected cluster changes
    position: dict[ClusterKey, int]


@dataclasses.dataclass(slots=True)
class _Cluster:
    body: Mapping[str, Any]
    labels: dict[str, str]
    cel: select.CelValue | None = None  # converted on first use, once per version


@dataclasses.dataclass(slots=True)
class _Profile:
    scope: str | None  # a Profile selects only in its namespace
    selector: types.LabelSelector | None
    program: select.CelProgram | None
    refs: frozenset[ClusterKey]
    error: errors.FlotillaError | None = None
    depends_on: tuple[str, ...] = ()
    reads_labels: frozenset[str] = frozenset()  # the label keys its rollout stages select by
    reads_all: bool = False  # its templateResourceRefs render over the whole cluster
    pairs: tuple[_Pair, ...] = ()  # indexed under: a cluster needs one of these ...
    keys: tuple[str, ...] = ()  # ... or one of these label keys
    scan: bool = False  # ... or nothing narrows it: every cluster in scope is a candidate
    selected: dict[ClusterKey, select.SelectionReason] = dataclasses.field(default_factory=dict)
    rows: Rows | None = None  # `selected` sorted; None once `selected` changes


def _add(index: dict[Any, set[Any]], key: Any, item: Any) -> None:
    index.setdefault(key, set()).add(item)


def _discard(index: dict[Any, set[Any]], key: Any, item: Any) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(item)
        if not members:
            del index[key]


def _ready(body: Mapping[str, Any]) -> bool:
    """What a rollout reads as "reachable" (rollout_step: status.ready, True when unknown)."""
    return bool((body.get("status") or {}).get("ready", True))


def _material(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What of a cluster a selection or a rollout can read (not resourceVersion & co)."""
    meta = body.get("metadata") or {}
    return (meta.get("labels"), meta.get("annotations"), bool(meta.get("deletionTimestamp")),
            body.get("spec"), body.get("status"))


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a profile is decided over the fleet.

    The loop allocates a CEL tree per cluster (kept with the cluster) and nothing
    cyclic to free; the collector, triggered by those allocations, re-scanned the
    growing heap and took 45 % of a 10,000-cluster restart (bench/planner.py).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class PlanIndex:
    """Profiles' selections over a fleet, updated incrementally (see the module doc)."""

    def __init__(self) -> None:
        self._clusters: dict[ClusterKey, _Cluster] = {}
        self._clusters_by_pair: dict[_Pair, set[ClusterKey]] = {}
        self._clusters_by_key: dict[str, set[ClusterKey]] = {}
        self._clusters_by_ns: dict[str, set[ClusterKey]] = {}
        self._profiles: dict[ProfileKey, _Profile] = {}
        self._profiles_by_pair: dict[_Pair, set[ProfileKey]] = {}
        self._profiles_by_key: dict[str, set[ProfileKey]] = {}
        self._profiles_by_ref: dict[ClusterKey, set[ProfileKey]] = {}
        self._scan: set[ProfileKey] = set()
        self._cel: set[ProfileKey] = set()
        self._selecting: dict[ClusterKey, set[ProfileKey]] = {}
        self.evaluations = 0  # (profile, cluster) decisions made so far, for tests and bench

    # -- reading --------------------------------------------------------------------------

    def selection(self, profile: ProfileKey) -> dict[ClusterKey, select.SelectionReason]:
        """The clusters a profile selects and why; raises what its spec got wrong.

        Empty for a profile the index does not hold. The error is the one
        `select_clusters` (or parsing the spec) raises: a CEL expression that does
        not compile, a malformed selector.
        """
        held = self._profiles.get(profile)
        if held is None:
            return {}
        if held.error is not None:
            raise held.error
        return dict(held.selected)

    def sorted_selection(self, profile: ProfileKey) -> tuple[tuple[str, str, str], ...]:
        """`selection` as sorted (namespace, name, reason) rows; raises as it does."""
        return self.sorted_rows(profile).rows

    def sorted_rows(self, profile: ProfileKey) -> Rows:
        """`selection` sorted, with each cluster's current body; raises as it does.

        Kept until that profile's selection changes (a changed body of a cluster it
        still selects is put in place), so a re-plan of a profile whose clusters stayed
        the same neither rebuilds, sorts nor looks up its rows again.
        """
        held = self._profiles.get(profile)
        if held is None:
            return Rows((), (), [], {})
        if held.error is not None:
            raise held.error
        if held.rows is None:
            items = sorted(held.selected.items())  # keys are unique: reasons never compared
            keys = tuple(key for key, _ in items)
            held.rows = Rows(rows=tuple((ns, name, str(reason)) for (ns, name), reason in items),
                             keys=keys, bodies=[self._clusters[key].body for key in keys],
                             position={key: i for i, key in enumerate(keys)})
        return held.rows

    def selecting(self, namespace: str, name: str) -> frozenset[ProfileKey]:
        """The profiles selecting one cluster (by selector or by ref)."""
        return frozenset(self._selecting.get((namespace, name), ()))

    # -- clusters -------------------------------------------------------------------------

    def cluster_changed(self, cluster: Mapping[str, Any]) -> Update:
        """Take a new or changed WorkloadCluster; re-decide only its candidate profiles."""
        meta = cluster.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if not key[1]:
            return Update()  # select_clusters ignores a nameless cluster too
        old = self._clusters.get(key)
        new_labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        if old is not None:
            material = _material(old.body) != _material(cluster)
            relabelled = old.labels != new_labels
            ready_changed = _ready(old.body) != _ready(cluster)
            relabelled_keys = {k for k in old.labels.keys() | new_labels.keys()
                               if old.labels.get(k) != new_labels.get(k)}
            if relabelled:
                self._unindex_cluster(key, old.labels)
        else:
            material = relabelled = ready_changed = True
            relabelled_keys = set(new_labels)
            _add(self._clusters_by_ns, key[0], key)
        record = _Cluster(body=cluster, labels=new_labels)
        self._clusters[key] = record
        if relabelled:
            for pair in new_labels.items():
                _add(self._clusters_by_pair, pair, key)
                _add(self._clusters_by_key, pair[0], key)
        before = set(self._selecting.get(key, ()))
        if relabelled:
            candidates = before | self._scan | self._profiles_by_ref.get(key, set())
            for pair in new_labels.items():
                candidates |= self._profiles_by_pair.get(pair, set())
                candidates |= self._profiles_by_key.get(pair[0], set())
        elif material:
            # Same labels and refs: only a CEL expression can answer differently now.
            candidates = (before | self._scan | self._labelled_candidates(new_labels)) & self._cel
        else:
            candidates = set()
        changed = {p for p in candidates if self._redecide(p, key, record)}
        for profile in self._selecting.get(key, ()):
            rows = self._profiles[profile].rows  # None where the selection just changed
            if rows is not None:
                rows.bodies[rows.position[key]] = cluster
        touched = set(changed)
        if material:
            kept = (before & self._selecting.get(key, set())) - changed
            touched |= {p for p in kept if ready_changed or self._reads(p, relabelled_keys)}
        return Update(changed=frozenset(changed), touched=frozenset(touched))

    def _reads(self, profile: ProfileKey, relabelled: set[str]) -> bool:
        """Whether a profile's plan (or that of one it depends on) reads a changed cluster."""
        held = self._profiles[profile]
        for key in (profile, *((profile[0], profile[1], d) for d in held.depends_on)):
            other = self._profiles.get(key)
            if other is not None and (other.reads_all or not other.reads_labels.isdisjoint(
                    relabelled)):
                return True
        return False

    def cluster_removed(self, namespace: str, name: str) -> Update:
        """Forget a deleted WorkloadCluster; every profile that selected it changes."""
        key = (namespace, name)
        old = self._clusters.pop(key, None)
        if old is None:
            return Update()
        self._unindex_cluster(key, old.labels)
        _discard(self._clusters_by_ns, namespace, key)
        before = self._selecting.pop(key, set())
        for profile in before:
            held = self._profiles[profile]
            held.selected.pop(key, None)
            held.rows = None
        return Update(changed=frozenset(before), touched=frozenset(before))

    def _unindex_cluster(self, key: ClusterKey, labels: Mapping[str, str]) -> None:
        for pair in labels.items():
            _discard(self._clusters_by_pair, pair, key)
            _discard(self._clusters_by_key, pair[0], key)

    def _labelled_candidates(self, labels: Mapping[str, str]) -> set[ProfileKey]:
        out: set[ProfileKey] = set()
        for pair in labels.items():
            out |= self._profiles_by_pair.get(pair, set())
            out |= self._profiles_by_key.get(pair[0], set())
        return out

    def _redecide(self, profile: ProfileKey, key: ClusterKey, cluster: _Cluster) -> bool:
        """Decide one (profile, cluster) pair again; True when the answer changed."""
        held = self._profiles[profile]
        reason = self._decide(held, key, cluster)
        if held.selected.get(key) == reason:
            return False
        held.rows = None
        if reason is None:
            del held.selected[key]
            _discard(self._selecting, key, profile)
        else:
            held.selected[key] = reason
            _add(self._selecting, key, profile)
        return True

    def _decide(self, held: _Profile, key: ClusterKey,
                cluster: _Cluster) -> select.SelectionReason | None:
        """`select_clusters`' rule for one cluster: selectors first, refs on top."""
        if held.error is not None or (held.scope is not None and key[0] != held.scope):
            return None
        self.evaluations += 1
        if (held.selector or held.program) and self._holds(held, cluster):
            return "Selector"
        return "ClusterRefs" if key in held.refs else None

    @staticmethod
    def _holds(held: _Profile, cluster: _Cluster) -> bool:
        if held.selector and not select.label_selector_matches(held.selector, cluster.labels):
            return False
        if held.program is None:
            return True
        if cluster.cel is None:
            cluster.cel = select.CelValue.of(cluster.body)
        try:
            return held.program.evaluate(variable="cluster", value=cluster.cel)
        except select.CelEvaluationError:
            return False  # a missing fact is no match, as in select_clusters

    # -- profiles -------------------------------------------------------------------------

    def profile_changed(self, kind: str, body: Mapping[str, Any]) -> Update:
        """Take a new or changed profile; decide it over the clusters it could select."""
        meta = body.get("metadata") or {}
        key = (kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        old = self._profiles.get(key)
        before = dict(old.selected) if old is not None else {}
        if old is not None:
            self._unindex_profile(key, old)
        scope = key[1] if kind == "Profile" else None
        held = self._parse(body.get("spec") or {}, scope)
        self._profiles[key] = held
        self._index_profile(key, held)
        with _collector_paused():
            for cluster_key in self._candidates(held):
                reason = self._decide(held, cluster_key, self._clusters[cluster_key])
                if reason is not None:
                    held.selected[cluster_key] = reason
                    _add(self._selecting, cluster_key, key)
        changed = frozenset({key}) if held.selected != before or old is None or (
            (old.error is None) != (held.error is None)) else frozenset()
        return Update(changed=changed, touched=frozenset({key}))

    def profile_removed(self, kind: str, namespace: str, name: str) -> Update:
        key = (kind, namespace, name)
        old = self._profiles.pop(key, None)
        if old is None:
            return Update()
        self._unindex_profile(key, old)
        return Update(changed=frozenset({key}), touched=frozenset({key}))

    def _parse(self, spec_data: Mapping[str, Any], scope: str | None) -> _Profile:
        try:
            spec = types.ProfileSpec.from_dict(spec_data)
            program = select.compile_cel(spec.cluster_selector_cel,
                                         field="spec.clusterSelectorCEL") \
                if spec.cluster_selector_cel else None
        except errors.FlotillaError as error:
            return _Profile(scope=scope, selector=None, program=None, refs=frozenset(),
                            error=error)
        selector = spec.cluster_selector if spec.cluster_selector and \
            not spec.cluster_selector.empty else None
        # A ClusterProfile ref without a namespace means "default", as kubectl does.
        refs = frozenset((ref.namespace or scope or "default", ref.name)
                         for ref in spec.cluster_refs)
        stage_keys: set[str] = set()
        for stage in spec.rollout.stages if spec.rollout else ():
            if stage.cluster_selector is not None:
                stage_keys.update(stage.cluster_selector.match_labels)
                stage_keys.update(e.key for e in stage.cluster_selector.match_expressions)
        held = _Profile(scope=scope, selector=selector, program=program, refs=refs,
                        depends_on=spec.depends_on, reads_labels=frozenset(stage_keys),
                        reads_all=bool(spec.template_resource_refs))
        self._narrow(held)
        return held

    def _narrow(self, held: _Profile) -> None:
        """Choose what a cluster must carry to be a candidate: the rarest requirement."""
        if held.selector is None:
            held.scan = held.program is not None
            return
        options: list[tuple[int, tuple[_Pair, ...], tuple[str, ...]]] = []
        for pair in held.selector.match_labels.items():
            options.append((len(self._clusters_by_pair.get(pair, ())), (pair,), ()))
        for expr in held.selector.match_expressions:
            if expr.operator == types.SelectorOperator.IN:
                pairs = tuple((expr.key, value) for value in expr.values)
                size = sum(len(self._clusters_by_pair.get(p, ())) for p in pairs)
                options.append((size, pairs, ()))
            elif expr.operator == types.SelectorOperator.EXISTS:
                options.append((len(self._clusters_by_key.get(expr.key, ())), (), (expr.key,)))
        if not options:
            held.scan = True  # NotIn / DoesNotExist alone rule no cluster out by label
            return
        _, held.pairs, held.keys = min(options, key=lambda option: option[0])

    def _candidates(self, held: _Profile) -> Iterable[ClusterKey]:
        if held.error is not None:
            return ()
        found: set[ClusterKey] = {ref for ref in held.refs if ref in self._clusters}
        if held.scan:
            found |= (self._clusters_by_ns.get(held.scope, set()) if held.scope is not None
                      else set(self._clusters))
        for pair in held.pairs:
            found |= self._clusters_by_pair.get(pair, set())
        for label in held.keys:
            found |= self._clusters_by_key.get(label, set())
        return found

    def _index_profile(self, key: ProfileKey, held: _Profile) -> None:
        for pair in held.pairs:
            _add(self._profiles_by_pair, pair, key)
        for label in held.keys:
            _add(self._profiles_by_key, label, key)
        for ref in held.refs:
            _add(self._profiles_by_ref, ref, key)
        if held.scan:
            self._scan.add(key)
        if held.program is not None:
            self._cel.add(key)

    def _unindex_profile(self, key: ProfileKey, held: _Profile) -> None:
        for pair in held.pairs:
            _discard(self._profiles_by_pair, pair, key)
        for label in held.keys:
            _discard(self._profiles_by_key, label, key)
        for ref in held.refs:
            _discard(self._profiles_by_ref, ref, key)
        self._scan.discard(key)
        self._cel.discard(key)
        for cluster_key in held.selected:
            _discard(self._selecting, cluster_key, key)
