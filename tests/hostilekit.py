"""Hostile input for the API server and the controller, generated with hypothesis.

Used by tests/e2e/test_hostile_input.py and bench/hostile.py. `objects()` draws
ClusterProfiles, Profiles, CatalogServices and WorkloadClusters from the CRDs'
own openAPIV3Schema (crds/*.yaml: types, enums, bounds; values a schema leaves
open are drawn wide: unicode, huge, deeply nested), then maybe corrupts them with
one of `WRONG` — input the schema cannot catch and only the controller can
judge (bad CEL, cyclic dependsOn, unknown services, sandbox escapes…).
`cel_messages()` lists the x-kubernetes-validations messages, which is how a
CEL rejection is told apart from a schema one in the API server's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

CRDS = Path(__file__).resolve().parents[1] / "crds"
KINDS = {"ClusterProfile": "flotilla.dev_clusterprofiles.yaml",
         "Profile": "flotilla.dev_profiles.yaml",
         "CatalogService": "flotilla.dev_catalogservices.yaml",
         "WorkloadCluster": "flotilla.dev_workloadclusters.yaml"}
PREFIX = "hx-"  # every generated name starts with it, so a test can clean up by prefix


def schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / KINDS[kind]).read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def cel_messages() -> list[str]:
    """Every message of an x-kubernetes-validations rule in the four CRDs."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for rule in node.get("x-kubernetes-validations") or []:
                found.append(str(rule.get("message") or rule.get("rule")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    for kind in KINDS:
        walk(schema(kind))
    return found


_text = st.one_of(st.sampled_from(["", "a", "cert-manager", ">=1.0", "true", "x" * 300]),
                  st.text(max_size=12))
_free = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), _text),
                     lambda inner: st.one_of(st.lists(inner, max_size=3),
                                             st.dictionaries(_text, inner, max_size=3)),
                     max_leaves=8)


def from_schema(node: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values the node's schema describes (bounded depth; optional fields often left out)."""
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if node.get("x-kubernetes-int-or-string"):
        return st.one_of(st.integers(-5, 200), st.sampled_from(["50%", "1", "x%"]))
    if node.get("x-kubernetes-preserve-unknown-fields") and kind in (None, "object") \
            and not node.get("properties"):
        return _free
    if kind == "string":
        return _text
    if kind == "integer":
        return st.integers(node.get("minimum", -10), node.get("maximum", 2000))
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        if depth > 4:
            return st.just([])
        return st.lists(from_schema(node.get("items") or {}, depth + 1), max_size=2)
    if kind == "object":
        props = node.get("properties") or {}
        if not props:
            extra = node.get("additionalProperties")
            inner = from_schema(extra, depth + 1) if isinstance(extra, dict) else _text
            return st.dictionaries(_text, inner, max_size=2)
        if depth > 4:
            return st.just({k: "x" for k in node.get("required") or []})
        required = set(node.get("required") or [])
        return st.fixed_dictionaries(
            {k: from_schema(v, depth + 1) for k, v in props.items() if k in required},
            optional={k: from_schema(v, depth + 1) for k, v in props.items()
                      if k not in required})
    return _free


def _deep(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"leaf": 1}
    for _ in range(n):
        out = {"d": out}
    return out


# Each takes a ClusterProfile/Profile spec and returns the hostile one, plus the field a
# condition must name when the API server accepts it.
Wrong = Callable[[dict[str, Any], str], tuple[dict[str, Any], str]]
_SEL = {"clusterSelector": {"matchLabels": {"hostile": "on"}}}
WRONG: dict[str, Wrong] = {
    "bad-cel": lambda s, n: ({**_SEL, "clusterSelectorCEL": "cluster.metadata.(("},
                             "spec.clusterSelectorCEL"),
    "cyclic-dependsOn": lambda s, n: ({**_SEL, "dependsOn": [n]}, "spec.dependsOn"),
    "unknown-service": lambda s, n: ({**_SEL, "services": [{"name": "no-such-svc"}]},
                                     "spec.services[0].name"),
    "version-nothing-matches": lambda s, n: (
        {**_SEL, "services": [{"name": "cert-manager", "version": ">=999.0.0"}]},
        "spec.services[0].version"),
    "values-not-a-map": lambda s, n: (
        {**_SEL, "services": [{"name": "cert-manager", "values": "[1, 2"}]},
        "spec.services[0].values"),
    "huge-values": lambda s, n: (
        {**_SEL, "services": [{"name": "cert-manager", "values": {"k": "v" * 200_000}}]},
        "spec.services[0].values"),
    "deep-values": lambda s, n: (
        {**_SEL, "services": [{"name": "cert-manager", "values": _deep(120)}]},
        "spec.services[0].values"),
    "jinja-escape": lambda s, n: (
        {**_SEL, "services": [{"name": "cert-manager", "values": {
            "x": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}}]},
        "spec.services[0].values"),
    "jinja-globals": lambda s, n: (
        {**_SEL, "services": [{"name": "cert-manager", "values": {
            "x": "{{ cycler.__init__.__globals__.os.popen('id').read() }}"}}]},
        "spec.services[0].values"),
    "lua-escape": lambda s, n: (
        {**_SEL, "validateHealths": [{"name": "esc", "group": "", "version": "v1",
                                      "kind": "ConfigMap", "namespace": "default",
                                      "script": "os.execute('id'); "
                                                "return io.open('/etc/passwd')"}]},
        "spec.validateHealths[0]"),
    "lua-loop": lambda s, n: (
        {**_SEL, "validateHealths": [{"name": "spin", "group": "", "version": "v1",
                                      "kind": "ConfigMap", "namespace": "default",
                                      "script": "while true do end"}]},
        "spec.validateHealths[0]"),
}


def _meta(kind: str, name: str, namespace: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if kind in ("Profile", "WorkloadCluster"):
        meta["namespace"] = namespace
    return meta


@st.composite
def objects(draw: st.DrawFn, namespace: str) -> tuple[dict[str, Any], str, str]:
    """(object, variant, field): a drawn object, which wrong variant it is ("schema" when
    drawn from the schema alone) and the field a condition must name ("" when any)."""
    kind = draw(st.sampled_from(sorted(KINDS)))
    name = PREFIX + draw(st.text("abcdefghij0123456789", min_size=6, max_size=10))
    if draw(st.integers(0, 9)) == 0:
        name = PREFIX + draw(st.sampled_from(["ünï", "名前", "a" * 300, "UPPER", "x_y"]))
    spec = draw(from_schema(schema(kind)["properties"]["spec"]))
    variant, field = "schema", ""
    if kind in ("ClusterProfile", "Profile") and draw(st.booleans()):
        variant = draw(st.sampled_from(sorted(WRONG)))
        spec, field = WRONG[variant](spec, name)
    body = {"apiVersion": "flotilla.dev/v1alpha1", "kind": kind,
            "metadata": _meta(kind, name, namespace), "spec": spec}
    return body, variant, field
