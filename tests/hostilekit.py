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

import functools
import json
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
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
PREFIX = "hx-"  # every generated name starts with it, so a test can clean up by prefix
TENANT = "hx-tenant"  # the default tenant namespace hostile Profiles live in


@functools.cache
def schema(kind: str) -> dict[str, Any]:
    crd = yaml.load((CRDS / KINDS[kind]).read_text(), Loader=_Loader)
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


@functools.cache
def _spec(kind: str) -> st.SearchStrategy[Any]:
    return from_schema(schema(kind)["properties"]["spec"])


def _deep(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"leaf": 1}
    for _ in range(n):
        out = {"d": out}
    return out


def _big(values: Any) -> dict[str, Any]:
    """A small chart with big values; one release name, so all but one lose a conflict."""
    return {**_SEL, "helmCharts": [{"repositoryURL": "{repo}", "chartName": "standin-app",
                                    "chartVersion": "0.1.0", "releaseName": "hx-big",
                                    "releaseNamespace": "hx-big", "values": {"data": values}}]}


# Each takes a ClusterProfile/Profile spec and returns the hostile one, plus the field a
# condition must name when the API server accepts it.
Wrong = Callable[[dict[str, Any], str], tuple[dict[str, Any], str]]
_SEL = {"clusterSelector": {"matchLabels": {"hostile": "on"}}}
WRONG: dict[str, Wrong] = {
    "bad-cel": lambda s, n: ({**_SEL, "clusterSelectorCEL": "cluster.metadata.(("},
                             "spec.clusterSelectorCEL"),
    "cyclic-dependsOn": lambda s, n: ({**_SEL, "dependsOn": [n]}, "spec.dependsOn[0]"),
    "unknown-service": lambda s, n: ({**_SEL, "services": [{"name": "no-such-svc"}]},
                                     "spec.services[0].name"),
    "version-nothing-matches": lambda s, n: (
        {**_SEL, "services": [{"name": "cert-manager", "version": ">=999.0.0"}]},
        "spec.services[0].version"),
    "values-not-a-map": lambda s, n: (
        {**_SEL, "services": [{"name": "cert-manager", "values": "[1, 2"}]},
        "spec.services[0].values"),
    # Legitimate but extreme: no condition owed, only no crash and no harm.
    "huge-values": lambda s, n: (_big({"k": "v" * 200_000}), ""),
    "deep-values": lambda s, n: (_big(_deep(120)), ""),
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
        "validateHealths esc"),
    "broken-chart": lambda s, n: (
        {**_SEL, "helmCharts": [{"repositoryURL": "{repo}", "chartName": "broken",
                                 "chartVersion": "0.1.0", "releaseName": "hx-broken",
                                 "releaseNamespace": "hx-broken",
                                 "values": {"explode": True, "message": "boom"}}]},
        "hx-broken"),  # a failed helm install names its release, not the field
    # Manifests the scenario puts in the tenant namespace beforehand (see hostilerun).
    "steal-good-object": lambda s, n: (
        {**_SEL, "policyRefs": [{"kind": "ConfigMap", "namespace": "{tenant}",
                                 "name": "hx-steal"}]},
        ""),
    "steal-with-tier-1": lambda s, n: (
        {**_SEL, "tier": 1, "policyRefs": [{"kind": "ConfigMap", "namespace": "{tenant}",
                                            "name": "hx-steal"}]}, "spec.tier"),
    "cluster-scoped": lambda s, n: (
        {**_SEL, "policyRefs": [{"kind": "ConfigMap", "namespace": "{tenant}",
                                 "name": "hx-clusterrole"}]}, "spec.policyRefs"),
    "lua-loop": lambda s, n: (
        {**_SEL, "validateHealths": [{"name": "spin", "group": "", "version": "v1",
                                      "kind": "ConfigMap", "namespace": "default",
                                      "script": "while true do end"}]},
        "validateHealths spin"),
}


# A ClusterProfile is the platform's: a low tier or a cluster-scoped object is its right.
PROFILE_ONLY = frozenset({"steal-with-tier-1", "cluster-scoped"})


def _meta(kind: str, name: str, namespace: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if kind in ("Profile", "WorkloadCluster"):
        meta["namespace"] = namespace
    return meta


@st.composite
def objects(draw: st.DrawFn, repo_url: str, variant: str = "schema",
            tenant: str = TENANT) -> tuple[dict[str, Any], str, str]:
    """(object, variant, field): an object drawn from its kind's schema, made into the wrong
    `variant` (a key of WRONG; "schema" leaves it as drawn), and the field a condition must
    name when the API server accepts it ("" when no condition is owed)."""
    if variant == "schema":
        kind = draw(st.sampled_from(sorted(KINDS)))
    elif variant in PROFILE_ONLY:
        kind = "Profile"
    else:
        kind = draw(st.sampled_from(["ClusterProfile", "Profile"]))
    name = PREFIX + draw(st.text("abcdefghij0123456789", min_size=6, max_size=10))
    if draw(st.integers(0, 9)) == 0:
        name = PREFIX + draw(st.sampled_from(["ünï", "名前", "a" * 300, "UPPER", "x_y"]))
    spec = draw(_spec(kind))
    field = ""
    if variant != "schema":
        spec, field = WRONG[variant](spec, name)
        spec = json.loads(json.dumps(spec).replace("{repo}", repo_url).replace(
            "{tenant}", tenant))
    body = {"apiVersion": "flotilla.dev/v1alpha1", "kind": kind,
            "metadata": _meta(kind, name, tenant), "spec": spec}
    return body, variant, field
