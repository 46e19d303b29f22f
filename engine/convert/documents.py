"""A stream of Sveltos YAML documents → Flotilla documents plus the findings.

Used by `flotilla convert` (engine/cli/convert.py) through `convert()`, and by
tests. Each document goes to the converter of its kind:

- config.projectsveltos.io ClusterProfile / Profile → ours (`profiles`);
- lib.projectsveltos.io SveltosCluster → WorkloadCluster (`clusters`);
- ConfigMaps and Secrets that are templates — annotated
  `projectsveltos.io/template`, or named by a helm chart's valuesFrom — keep
  their shape, with their Go templates translated to Jinja2 (the annotation
  stays: Flotilla honours it);
- other Sveltos kinds, and Cluster API Clusters, are left out and reported;
- anything else passes through unchanged (server-written metadata removed).

Documents keep their input order. Pure: the caller reads and writes.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from engine import api
from engine.convert import clusters, jinja, meta, profiles
from engine.convert.report import Finding, Level, Report

TEMPLATE_ANNOTATION = "projectsveltos.io/template"


@dataclasses.dataclass(frozen=True)
class Result:
    documents: list[dict[str, Any]]
    findings: list[Finding]

    def text(self) -> str:
        """The output: findings as comments, then the documents as multi-document YAML."""
        dropped = sum(1 for f in self.findings if f.level is Level.DROPPED)
        review = len(self.findings) - dropped
        head = [f"# Converted from Sveltos by `flotilla convert` ({api.API_VERSION}).",
                f"# {dropped} item(s) not carried over, {review} to review."]
        head += [f"#   {finding.line()}" for finding in self.findings]
        body = "---\n".join(dump(document) for document in self.documents)
        return "\n".join(head) + "\n" + ("---\n" + body if body else "")


def convert(documents: Iterable[Any]) -> Result:
    """Convert parsed YAML documents (None entries, from empty documents, are skipped)."""
    flat = list(_flatten(documents))
    secrets = {(_meta(d).get("namespace", ""), _meta(d).get("name", "")): d
               for d in flat if isinstance(d, dict) and _is(d, "", "Secret")}
    reports = [Report(document=meta.name_of(d) if isinstance(d, dict) else f"document {i + 1}")
               for i, d in enumerate(flat)]
    values_refs: set[tuple[str, str, str]] = set()
    kustomize_refs: set[tuple[str, str, str]] = set()
    out: dict[int, dict[str, Any] | None] = {}
    # Profiles first: they say which ConfigMaps/Secrets hold values templates.
    for index, document in enumerate(flat):
        if isinstance(document, dict) and _group(document) == profiles.SVELTOS_GROUP and \
                document.get("kind") in profiles.KINDS:
            ctx = profiles.Context(kind=str(document["kind"]), namespace=_meta(document).get(
                "namespace", ""), report=reports[index], values_refs=values_refs,
                kustomize_refs=kustomize_refs)
            out[index] = profiles.convert(document, ctx)
    for index, document in enumerate(flat):
        if index in out:
            continue
        if not isinstance(document, dict):
            reports[index].dropped("", "not a Kubernetes object")
            out[index] = None
            continue
        out[index] = _other(document, secrets, values_refs, kustomize_refs, reports[index])
    findings = [finding for report in reports for finding in report.findings]
    return Result([d for _, d in sorted(out.items()) if d is not None], findings)


def _other(document: dict[str, Any], secrets: Mapping[tuple[str, str], Mapping[str, Any]],
           values_refs: set[tuple[str, str, str]], kustomize_refs: set[tuple[str, str, str]],
           report: Report) -> dict[str, Any] | None:
    group, kind = _group(document), str(document.get("kind") or "")
    if group == clusters.SVELTOS_GROUP and kind == clusters.KIND:
        return clusters.convert(document, secrets, report)
    if group.endswith("projectsveltos.io"):
        report.dropped("", f"Sveltos {kind} has no Flotilla counterpart")
        return None
    if group == "cluster.x-k8s.io" and kind == "Cluster":
        report.dropped("", "a Cluster API Cluster: register the cluster with `flotilla "
                           "register` (a WorkloadCluster and its kubeconfig Secret)")
        return None
    out = dict(document)
    out.pop("status", None)
    if "metadata" in out:
        out["metadata"] = meta.clean(out["metadata"], namespaced=True, report=report)
    if kind in ("ConfigMap", "Secret") and group == "":
        namespace, name = _meta(out).get("namespace", ""), _meta(out).get("name", "")

        def named_by(refs: set[tuple[str, str, str]]) -> bool:
            # A document without a namespace goes wherever kubectl applies it: any ref's.
            return any(k == kind and n == name and (not namespace or ns == namespace)
                       for k, ns, n in refs)

        if named_by(kustomize_refs):
            _translate_data(out, secret=kind == "Secret", report=report, variables=True)
            if out.get("binaryData"):
                report.review("binaryData", "an archive is not translated: templates inside "
                              "it must be Jinja2")
        elif TEMPLATE_ANNOTATION in (_meta(out).get("annotations") or {}) or \
                named_by(values_refs):
            _translate_data(out, secret=kind == "Secret", report=report)
    return out


def _translate_data(document: dict[str, Any], *, secret: bool, report: Report,
                    variables: bool = False) -> None:
    data = document.get("data")
    if isinstance(data, Mapping):
        new: dict[str, Any] = {}
        for key, value in data.items():
            if not isinstance(value, str):
                new[key] = value
            elif secret:
                new[key] = _translate_secret_value(value, f"data.{key}", report, variables)
            else:
                new[key] = jinja.translate_into(value, f"data.{key}", report,
                                                variables=variables)
        document["data"] = new
    string_data = document.get("stringData")
    if secret and isinstance(string_data, Mapping):
        document["stringData"] = {
            key: jinja.translate_into(value, f"stringData.{key}", report, secret=True,
                                      variables=variables)
            if isinstance(value, str) else value for key, value in string_data.items()}


def _translate_secret_value(encoded: str, path: str, report: Report, variables: bool) -> str:
    try:
        text = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        report.dropped(path, "not base64 text; left as it is")
        return encoded
    translated = jinja.translate_into(text, path, report, secret=True, variables=variables)
    if translated == text:
        return encoded
    return base64.b64encode(translated.encode("utf-8")).decode("ascii")


def _flatten(documents: Iterable[Any]) -> Iterable[Any]:
    for document in documents:
        if document is None:
            continue
        if isinstance(document, dict) and document.get("kind") == "List" and \
                isinstance(document.get("items"), list):
            yield from _flatten(document["items"])
        else:
            yield document


def _group(document: Mapping[str, Any]) -> str:
    api_version = str(document.get("apiVersion") or "")
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def _meta(document: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = document.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _is(document: Mapping[str, Any], group: str, kind: str) -> bool:
    return _group(document) == group and document.get("kind") == kind


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (values, templates), so the output reads well."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(document: Mapping[str, Any]) -> str:
    return yaml.dump(dict(document), Dumper=_Dumper, sort_keys=False, width=100,
                     allow_unicode=True)
