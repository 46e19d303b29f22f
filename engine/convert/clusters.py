"""Sveltos SveltosCluster → Flotilla WorkloadCluster (its kubeconfig Secret stays as it is).

Used by `engine.convert.documents`. A SveltosCluster reads its kubeconfig
from the Secret `spec.kubeconfigName` (default `<name>-sveltos-kubeconfig`,
Sveltos's convention) at key `spec.kubeconfigKeyName` (default: the Secret's
only key). A WorkloadCluster names both explicitly in `kubeconfigSecretRef`,
so when the key is unset the Secret decides it if it is part of the input;
otherwise Flotilla's default key `kubeconfig` is used and a finding says to
check it. Labels are kept (profiles select them); the fields
Sveltos alone has go through `engine.convert.fields.CLUSTER_SPEC`.
The Secret's data is never read into a finding. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import api
from engine.convert import fields, meta
from engine.convert import schema as fit
from engine.convert.fields import Action
from engine.convert.report import Report

SVELTOS_GROUP = "lib.projectsveltos.io"
KIND = "SveltosCluster"
DEFAULT_KEY = "kubeconfig"


def secret_name(document: Mapping[str, Any]) -> str:
    """The kubeconfig Secret a SveltosCluster reads."""
    spec = document.get("spec") or {}
    name = (document.get("metadata") or {}).get("name", "")
    return str(spec.get("kubeconfigName") or f"{name}-sveltos-kubeconfig")


def convert(document: Mapping[str, Any], secrets: Mapping[tuple[str, str], Mapping[str, Any]],
            report: Report) -> dict[str, Any]:
    """The WorkloadCluster for one SveltosCluster; `secrets` are the input's Secrets by
    (namespace, name), read for their key names only."""
    metadata = meta.clean(document.get("metadata"), namespaced=True, report=report)
    namespace = metadata.get("namespace", "")
    spec = document.get("spec") or {}
    if not isinstance(spec, Mapping):
        report.dropped("spec", "not an object")
        spec = {}
    ref = {"name": secret_name(document), "key": _key(spec, secrets.get((namespace,
                                                      secret_name(document))), report)}
    converted: dict[str, Any] = {"kubeconfigSecretRef": ref}
    for key, value in spec.items():
        rule = fields.CLUSTER_SPEC.get(key)
        path = f"spec.{key}"
        if rule is None:
            report.dropped(path, "not a SveltosCluster field Flotilla knows")
        elif rule.action is Action.UNSUPPORTED:
            if not rule.is_default(value):
                report.dropped(path, rule.how)
        elif rule.action is Action.PASS:
            converted[key] = value
    ours = fit.spec_schema(api.WORKLOAD_CLUSTER)
    fitted = fit.fit(converted, ours, "spec", report)
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.WORKLOAD_CLUSTER,
        "metadata": metadata,
        "spec": fitted if fitted is not fit.DROP else {"kubeconfigSecretRef": ref},
    }


def _key(spec: Mapping[str, Any], secret: Mapping[str, Any] | None, report: Report) -> str:
    given = spec.get("kubeconfigKeyName")
    if given:
        return str(given)
    if secret is None:
        report.review("spec.kubeconfigKeyName", f"unset: Sveltos reads the Secret's only key; "
                      f"assumed {DEFAULT_KEY!r} (give the Secret as input to have it checked)")
        return DEFAULT_KEY
    keys = sorted({*(secret.get("data") or {}), *(secret.get("stringData") or {})})
    if len(keys) == 1:
        return str(keys[0])
    chosen = DEFAULT_KEY if DEFAULT_KEY in keys else (keys[0] if keys else DEFAULT_KEY)
    report.review("spec.kubeconfigKeyName", f"unset and the Secret has {len(keys)} keys; "
                  f"{chosen!r} is used")
    return chosen
