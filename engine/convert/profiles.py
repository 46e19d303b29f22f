"""Sveltos ClusterProfile / Profile → Flotilla ClusterProfile / Profile.

Used by `engine.convert.documents`. Each top-level spec field goes through
its rule in `engine.convert.fields.PROFILE_SPEC`; the CONVERT rules are the
functions of `CONVERTERS` below, one per field, and every result is fitted
to our schema (`engine.convert.schema`), so what comes out validates and
what does not fit is reported with its path. Go templates in helm values,
kustomization values, patches and templated names are translated by
`engine.convert.jinja`; a field that Flotilla does not template (a chart
version, a release namespace, a reference's name) is reported instead, and
the entry holding it left out whole, rather than applied wrong.
Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from engine import api
from engine.convert import fields, jinja, meta
from engine.convert import schema as fit
from engine.convert.fields import Action
from engine.convert.report import Report

SVELTOS_GROUP = "config.projectsveltos.io"
KINDS = (api.CLUSTER_PROFILE, api.PROFILE)


@dataclasses.dataclass
class Context:
    kind: str
    namespace: str
    report: Report
    # ConfigMaps/Secrets named by helmCharts[].valuesFrom: (kind, namespace, name). Their
    # data are values templates in Flotilla (and in Sveltos), so `documents` translates them.
    values_refs: set[tuple[str, str, str]] = dataclasses.field(default_factory=set)
    # ConfigMaps/Secrets named by kustomizationRefs: their files are templates whose other
    # fields (`.Region`) are the ref's values, bare variables in Jinja2.
    kustomize_refs: set[tuple[str, str, str]] = dataclasses.field(default_factory=set)


def convert(document: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """The Flotilla document for one Sveltos profile; findings go to `ctx.report`."""
    kind = ctx.kind
    out: dict[str, Any] = {
        "apiVersion": api.API_VERSION,
        "kind": kind,
        "metadata": meta.clean(document.get("metadata"), namespaced=kind == api.PROFILE,
                               report=ctx.report),
    }
    spec = document.get("spec") or {}
    if not isinstance(spec, Mapping):
        ctx.report.dropped("spec", "not an object")
        spec = {}
    ours = fit.properties(fit.spec_schema(kind))
    converted: dict[str, Any] = {}
    for key, value in spec.items():
        path = f"spec.{key}"
        rule = fields.PROFILE_SPEC.get(key)
        if rule is None:
            ctx.report.dropped(path, "not a Sveltos field Flotilla knows")
            continue
        if rule.action is Action.UNSUPPORTED:
            if not rule.is_default(value):
                ctx.report.dropped(path, rule.how)
            continue
        target = rule.to or key
        if target not in ours:
            if not fit.is_empty(value):
                ctx.report.dropped(path, "not supported by this version of Flotilla yet")
            continue
        convert_field = CONVERTERS.get(key)
        new = convert_field(value, path, ctx) if convert_field else value
        if new is fit.DROP:
            continue
        if fit.unhonoured(ours[target]) and not fit.is_empty(value):
            ctx.report.review(path, fit.UNHONOURED)
        new = fit.fit(new, ours[target], path, ctx.report)
        if new is not fit.DROP:
            converted[target] = new
    out["spec"] = converted
    return out


# --- field converters -----------------------------------------------------------------------

Converter = Callable[[Any, str, Context], Any]


def _cluster_selector(value: Any, path: str, ctx: Context) -> Any:
    if isinstance(value, str):
        try:
            return parse_selector(value)
        except ValueError as error:
            ctx.report.dropped(path, f"selector {value!r}: {error}")
            return fit.DROP
    return value


_REQUIREMENT = re.compile(r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9./_-]+)\s*"
                          r"(?:(?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9._-]*)|"
                          r"\s(?P<set>in|notin)\s*\((?P<values>[^()]*)\))?\s*$")


def parse_selector(text: str) -> dict[str, Any]:
    """A label selector string (`a=b,c!=d,e in (x,y),!f`) as a LabelSelector object."""
    labels: dict[str, str] = {}
    expressions: list[dict[str, Any]] = []
    for part in re.split(r",(?![^()]*\))", text):
        if not part.strip():
            continue
        match = _REQUIREMENT.match(part)
        if not match:
            raise ValueError(f"cannot read {part.strip()!r}")
        key = match["key"]
        if match["neg"]:
            if match["op"] or match["set"]:
                raise ValueError(f"cannot read {part.strip()!r}")
            expressions.append({"key": key, "operator": "DoesNotExist"})
        elif match["op"] in ("=", "=="):
            labels[key] = match["value"]
        elif match["op"] == "!=":
            expressions.append({"key": key, "operator": "NotIn", "values": [match["value"]]})
        elif match["set"]:
            values = [v.strip() for v in match["values"].split(",") if v.strip()]
            expressions.append({"key": key, "operator": "In" if match["set"] == "in"
                                else "NotIn", "values": values})
        else:
            expressions.append({"key": key, "operator": "Exists"})
    selector: dict[str, Any] = {}
    if labels:
        selector["matchLabels"] = labels
    if expressions:
        selector["matchExpressions"] = expressions
    return selector


def _cluster_refs(value: Any, path: str, ctx: Context) -> Any:
    if not isinstance(value, list):
        return value
    out = []
    for i, ref in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(ref, Mapping):
            ctx.report.dropped(where, "not an object")
            continue
        kind = ref.get("kind", "SveltosCluster")
        if kind != "SveltosCluster":
            ctx.report.review(where, f"a {kind} ({ref.get('apiVersion', '?')}): Flotilla "
                              "deploys to WorkloadClusters; register this cluster as one named "
                              f"{ref.get('name')!r} in namespace {ref.get('namespace')!r}")
        for extra in sorted(set(ref) - {"kind", "apiVersion", "namespace", "name"}):
            ctx.report.dropped(f"{where}.{extra}", "an object reference field Flotilla "
                               "does not use")
        out.append({k: ref[k] for k in ("namespace", "name") if k in ref})
    return out


def _max_update(value: Any, path: str, ctx: Context) -> Any:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _template_resource_refs(value: Any, path: str, ctx: Context) -> Any:
    if not isinstance(value, list):
        return value
    out = []
    for i, ref in enumerate(value):
        resource = dict((ref or {}).get("resource") or {}) if isinstance(ref, Mapping) else {}
        for key in ("name", "namespace"):
            if isinstance(resource.get(key), str) and jinja.has_actions(resource[key]):
                resource[key] = jinja.translate_into(resource[key],
                                                     f"{path}[{i}].resource.{key}", ctx.report)
        out.append({**ref, "resource": resource} if isinstance(ref, Mapping) else ref)
    return out


def _refs(value: Any, path: str, ctx: Context, *, field: str) -> Any:
    """policyRefs / valuesFrom / patchesFrom / kustomizationRefs entries that can be kept."""
    if not isinstance(value, list):
        return value
    out = []
    for i, ref in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(ref, Mapping):
            ctx.report.dropped(where, "not an object")
            continue
        if ref.get("kind") in fields.FLUX_KINDS:
            ctx.report.dropped(where, f"a Flux {ref['kind']} source: Flotilla reads "
                               "ConfigMaps and Secrets only (put the manifests in one)")
            continue
        templated = [k for k in fields.UNTEMPLATED.get(field, ())
                     if isinstance(ref.get(k), str) and jinja.has_actions(ref[k])]
        if templated:
            ctx.report.dropped(where, f"{templated[0]} {ref[templated[0]]!r} is a template; "
                               "Flotilla names references literally (one entry per name)")
            continue
        if not ref.get("namespace") and ctx.kind == api.CLUSTER_PROFILE:
            ctx.report.dropped(f"{where}.namespace", "empty: Sveltos reads it in each "
                               "matching cluster's namespace; Flotilla needs the namespace")
        out.append(dict(ref))
    return out


def _policy_refs(value: Any, path: str, ctx: Context) -> Any:
    return _refs(value, path, ctx, field="policyRefs")


def _patches_from(value: Any, path: str, ctx: Context) -> Any:
    return _refs(value, path, ctx, field="patchesFrom")


def _values_from(value: Any, path: str, ctx: Context) -> Any:
    refs = _refs(value, path, ctx, field="valuesFrom")
    if isinstance(refs, list):
        for ref in refs:
            namespace = ctx.namespace if ctx.kind == api.PROFILE else ref.get("namespace", "")
            ctx.values_refs.add((ref.get("kind", ""), namespace or "", ref.get("name", "")))
    return refs


def _helm_charts(value: Any, path: str, ctx: Context) -> Any:
    if not isinstance(value, list):
        return value
    out = []
    for i, chart in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(chart, Mapping):
            ctx.report.dropped(where, "not an object")
            continue
        templated = [k for k in fields.UNTEMPLATED["helmCharts"]
                     if isinstance(chart.get(k), str) and jinja.has_actions(chart[k])]
        if templated:
            ctx.report.dropped(where, f"{templated[0]} {chart[templated[0]]!r} is a template; "
                               "Flotilla's chart coordinates are literal (one entry per value)")
            continue
        new = dict(chart)
        if isinstance(new.get("values"), str):
            new["values"] = jinja.translate_into(new["values"], f"{where}.values", ctx.report)
        if "valuesFrom" in new:
            new["valuesFrom"] = _values_from(new["valuesFrom"], f"{where}.valuesFrom", ctx)
        out.append(new)
    return out


def _kustomization_refs(value: Any, path: str, ctx: Context) -> Any:
    refs = _refs(value, path, ctx, field="kustomizationRefs")
    if not isinstance(refs, list):
        return refs
    for i, ref in enumerate(refs):
        namespace = ctx.namespace if ctx.kind == api.PROFILE else ref.get("namespace", "")
        ctx.kustomize_refs.add((ref.get("kind", ""), namespace or "", ref.get("name", "")))
        values = ref.get("values")
        if isinstance(values, Mapping):
            ref["values"] = {k: jinja.translate_into(v, f"{path}[{i}].values.{k}", ctx.report)
                             if isinstance(v, str) else v for k, v in values.items()}
        if "valuesFrom" in ref:
            ref["valuesFrom"] = _values_from(ref["valuesFrom"], f"{path}[{i}].valuesFrom", ctx)
    return refs


def _patches(value: Any, path: str, ctx: Context) -> Any:
    if not isinstance(value, list):
        return value
    out = []
    for i, patch in enumerate(value):
        if isinstance(patch, Mapping) and isinstance(patch.get("patch"), str):
            patch = {**patch, "patch": jinja.translate_into(patch["patch"],
                                                            f"{path}[{i}].patch", ctx.report)}
        out.append(patch)
    return out


def _checks(value: Any, path: str, ctx: Context) -> Any:
    """validateHealths / pre- and post- checks: evaluateCEL in the shape our schema has."""
    if not isinstance(value, list):
        return value
    field = path.rsplit(".", 1)[-1]
    ours = fit.properties(fit.properties(fit.spec_schema(ctx.kind)).get(field, {}).get(
        "items") or {})
    # Only an older schema with a single CEL string needs the rules joined.
    cel_is_list = (ours.get("evaluateCEL") or {}).get("type") != "string"
    out = []
    for i, check in enumerate(value):
        if not isinstance(check, Mapping):
            out.append(check)
            continue
        check = dict(check)
        rules = check.get("evaluateCEL")
        if isinstance(rules, list):
            named = [{"name": r.get("name", f"rule{n}"), "rule": r.get("rule",
                                                                       r.get("expression"))}
                     for n, r in enumerate(rules) if isinstance(r, Mapping)]
            if cel_is_list:
                check["evaluateCEL"] = named
            elif named:
                # Sveltos: the first rule that returns true decides, i.e. any of them.
                check["evaluateCEL"] = " || ".join(f"({r['rule']})" for r in named)
                if len(named) > 1:
                    ctx.report.review(f"{path}[{i}].evaluateCEL", "the rules are joined with "
                                      "||; the name of the rule that decided is not reported")
        out.append(check)
    return out


CONVERTERS: dict[str, Converter] = {
    "clusterSelector": _cluster_selector,
    "clusterRefs": _cluster_refs,
    "maxUpdate": _max_update,
    "templateResourceRefs": _template_resource_refs,
    "policyRefs": _policy_refs,
    "patchesFrom": _patches_from,
    "helmCharts": _helm_charts,
    "kustomizationRefs": _kustomization_refs,
    "patches": _patches,
    "validateHealths": _checks,
    "preDeployChecks": _checks,
    "preDeleteChecks": _checks,
    "postDeleteChecks": _checks,
}
