"""A profile's resolved content at one moment: the unit a revision records and a rollout moves.

Used by the controller's revision store (`controller.revisions`), the
summary reconciler (which deploys the snapshot of the revision a cluster was
assigned, never the live ConfigMaps or catalog) and `flotilla rollout
history`. A snapshot holds the content fields of the profile spec, the data
of every ConfigMap and Secret the spec references, and the CatalogService
specs its services use (with their dependencies). So an edit of a values
ConfigMap or a catalog entry becomes a new revision that passes through the
stages, health gates and `undo` like any spec change.

Secret data never goes into the ControllerRevision: `split` returns it apart
(the caller keeps it in a Secret owned by the revision) and the public part
carries only its digest. Large public parts are gzip-compressed; content
that would still come near etcd's object limit is refused with a SpecError.

Pure: plain data in, plain data out.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine import errors, render
from engine.model import types

# Spec fields that choose clusters or steer the rollout; everything else is content.
NOT_CONTENT = ("clusterSelector", "clusterRefs", "clusterSelectorCEL", "rollout", "maxUpdate",
               "stopMatchingBehavior")
FORMAT = 2  # revisions written before snapshots held the bare content spec (format 1)
COMPRESS_ABOVE = 256 * 1024
LIMIT = 1024 * 1024  # etcd refuses objects over ~1.5 MiB; stay well below

RefData = Mapping[str, str] | None  # None: an optional reference that was absent
# In a policyRef's data: the object is annotated as a template (api.TEMPLATE_ANNOTATIONS).
# A `/` never appears in a real ConfigMap/Secret key, so the mark cannot collide with one;
# it is part of the snapshot, so annotating an object is a new revision.
TEMPLATE_MARK = "metadata/template"
# Keys of templateResourceRefs objects (engine.templaterefs.PREFIX), kept beside the data of
# referenced ConfigMaps (or Secrets, for Secret objects).
RESOURCE_PREFIX = "Resource/"


@dataclass(frozen=True)
class Reference:
    """One ConfigMap or Secret a profile spec names, with the field that names it."""

    kind: str
    namespace: str
    name: str
    optional: bool
    field: str
    # A kustomizationRef's: binary content (binaryData, non-UTF-8 Secret data) is kept too.
    binary: bool = False
    # A policyRef's: whether the object is annotated as a template is kept (TEMPLATE_MARK).
    manifests: bool = False

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Snapshot:
    spec: Mapping[str, Any]
    configmaps: Mapping[str, RefData] = field(default_factory=dict)
    secrets: Mapping[str, RefData] = field(default_factory=dict)
    catalog: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # False for revisions recorded before snapshots: their references are read live.
    complete: bool = True

    def digest(self) -> str:
        return render.stable_hash(FORMAT, dict(self.spec), dict(self.configmaps),
                                  render.stable_hash(dict(self.secrets)), dict(self.catalog))

    def data(self, ref_key: str) -> RefData:
        found = self.secrets if ref_key.startswith("Secret/") else self.configmaps
        return found.get(ref_key)

    def has(self, ref_key: str) -> bool:
        return ref_key in self.configmaps or ref_key in self.secrets


def content_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(spec.items()) if k not in NOT_CONTENT}


def ref_namespace(profile_kind: str, profile_namespace: str, given: str) -> str:
    """A Profile reads references in its own namespace only (tenant scope)."""
    return profile_namespace if profile_kind == "Profile" else given


def references(spec: types.ProfileSpec, *, profile_kind: str,
               profile_namespace: str) -> list[Reference]:
    """Every ConfigMap/Secret the spec references: policyRefs, valuesFrom, patchesFrom and
    kustomizationRefs (with their valuesFrom)."""
    found: list[Reference] = []

    def add(ref: types.ValuesFrom, where: str, *, manifests: bool = False) -> None:
        ns = ref_namespace(profile_kind, profile_namespace, ref.namespace)
        found.append(Reference(str(ref.kind), ns, ref.name, ref.optional, where,
                               manifests=manifests))

    for i, chart in enumerate(spec.helm_charts):
        for j, ref in enumerate(chart.values_from):
            add(ref, f"spec.helmCharts[{i}].valuesFrom[{j}]")
    for i, policy in enumerate(spec.policy_refs):
        add(policy, f"spec.policyRefs[{i}]", manifests=True)
    for i, ref in enumerate(spec.patches_from):
        add(ref, f"spec.patchesFrom[{i}]")
    for i, kust in enumerate(spec.kustomization_refs):
        if not kust.supported:
            continue  # a Flux source or Local: the Unsupported condition names it
        ns = ref_namespace(profile_kind, profile_namespace, kust.namespace)
        found.append(Reference(str(kust.kind), ns, kust.name, False,
                               f"spec.kustomizationRefs[{i}]", binary=True))
        for j, ref in enumerate(kust.values_from):
            add(ref, f"spec.kustomizationRefs[{i}].valuesFrom[{j}]")
    return found


def templated(data: RefData) -> bool:
    """Whether a policyRef's object was annotated as a template."""
    return data is not None and TEMPLATE_MARK in data


def without_mark(data: RefData) -> RefData:
    """The object's own data (what a consumer other than policyRefs reads)."""
    if data is None or TEMPLATE_MARK not in data:
        return data
    return {k: v for k, v in data.items() if k != TEMPLATE_MARK}


def catalog_used(spec: types.ProfileSpec,
                 entries: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The catalog entries (raw specs) the profile's services use, dependencies included."""
    used: dict[str, Mapping[str, Any]] = {}
    todo = [s.name for s in spec.services]
    while todo:
        name = todo.pop()
        if name in used or name not in entries:
            continue  # an unknown service is reported by catalog.resolve, not here
        used[name] = entries[name]
        todo.extend(str(d) for d in entries[name].get("dependsOn") or [])
    return dict(sorted(used.items()))


# -- stored form ---------------------------------------------------------------------------

def split(snap: Snapshot) -> tuple[dict[str, Any], dict[str, str]]:
    """(ControllerRevision data, Secret string data) for a snapshot."""
    body = {"spec": dict(snap.spec), "configMaps": dict(snap.configmaps),
            "catalog": dict(snap.catalog)}
    public: dict[str, Any] = {"format": FORMAT, "secretRefs": sorted(snap.secrets),
                              "digest": snap.digest()}
    public.update(_pack(body, what="the snapshot"))
    secret = _pack({"secrets": dict(snap.secrets)}, what="the Secret data") \
        if snap.secrets else {}
    return public, {k: json.dumps(v, sort_keys=True) for k, v in secret.items()}


def join(public: Mapping[str, Any], secret: Mapping[str, str] | None) -> Snapshot:
    """The snapshot a ControllerRevision (and its Secret) recorded; format 1 is the bare spec."""
    if public.get("format") != FORMAT:
        return Snapshot(spec=content_of(public), complete=False)
    body = _unpack(public)
    secrets: dict[str, RefData] = {}
    if public.get("secretRefs"):
        if secret is None:
            raise errors.RetriableError("the Secret holding this revision's Secret data is "
                                        "missing", reason="SnapshotIncomplete", delay=5)
        secrets = dict(_unpack({k: json.loads(v) for k, v in secret.items()})["secrets"])
    return Snapshot(spec=body.get("spec") or {}, configmaps=body.get("configMaps") or {},
                    secrets=secrets, catalog=body.get("catalog") or {})


def _pack(body: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    if len(text) <= COMPRESS_ABOVE:
        return {"content": body}
    packed = base64.b64encode(gzip.compress(text.encode(), mtime=0)).decode()
    if len(packed) > LIMIT:
        raise errors.SpecError(
            f"{what} is {len(text)} bytes ({len(packed)} compressed), over the "
            f"{LIMIT}-byte limit of one revision: reference less content",
            field="spec", reason="SnapshotTooLarge")
    return {"gzip": packed}


def _unpack(stored: Mapping[str, Any]) -> dict[str, Any]:
    if "gzip" in stored:
        out: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(stored["gzip"])))
        return out
    return dict(stored.get("content") or {})


# -- what changed between two revisions ----------------------------------------------------

def changes(old: Snapshot, new: Snapshot) -> list[str]:
    """Human lines naming what differs: spec paths, referenced objects and keys, catalog paths.

    Secret values are never shown, only which Secret key changed.
    """
    out = [f"spec {p}" for p in _paths(dict(old.spec), dict(new.spec), "")]
    for kind, before, after in (("ConfigMap", old.configmaps, new.configmaps),
                                ("Secret", old.secrets, new.secrets)):
        for key in sorted(set(before) | set(after)):
            name = key.split("/", 1)[1]
            label = kind
            if key.startswith(RESOURCE_PREFIX):  # a templateResourceRefs object (templaterefs)
                label, name = "templateResourceRefs object", key[len(RESOURCE_PREFIX):]
            if key not in before or key not in after:
                out.append(f"{label} {name} {'referenced' if key in after else 'dropped'}")
                continue
            a, b = before[key] or {}, after[key] or {}
            for data_key in sorted(set(a) | set(b)):
                if a.get(data_key) == b.get(data_key):
                    continue
                if kind == "Secret":  # values never shown
                    out.append(f"Secret {name} key {data_key} changed" if label == kind
                               else f"{label} {name} changed")
                elif label != kind:
                    out.extend(f"{label} {name}{p}"
                               for p in _data_paths(a.get(data_key), b.get(data_key)))
                else:
                    out.extend(f"ConfigMap {name} {data_key}{p}"
                               for p in _data_paths(a.get(data_key), b.get(data_key)))
    for name in sorted(set(old.catalog) | set(new.catalog)):
        if name not in old.catalog or name not in new.catalog:
            out.append(f"catalog {name} {'added' if name in new.catalog else 'dropped'}")
            continue
        out.extend(f"catalog {name} {p}"
                   for p in _paths(dict(old.catalog[name]), dict(new.catalog[name]), ""))
    return out


def _data_paths(a: str | None, b: str | None) -> list[str]:
    """Changed paths inside one ConfigMap value, when both sides are YAML mappings."""
    try:
        pa, pb = yaml.safe_load(a or "") or {}, yaml.safe_load(b or "") or {}
    except yaml.YAMLError:
        return [""]
    if isinstance(pa, dict) and isinstance(pb, dict):
        return [f" {p}" for p in _paths(pa, pb, "")] or [""]
    return [""]


def _paths(a: Any, b: Any, at: str) -> Iterator[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            yield from _paths(a.get(key), b.get(key), f"{at}/{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _paths(x, y, f"{at}/{i}")
    elif a != b:
        yield at or "/"
