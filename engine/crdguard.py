"""Keep CustomResourceDefinitions alive across Helm upgrades and uninstalls.

Helm deletes whatever a release's previous revision had and its new one
lacks, and on uninstall everything the release has; for a CRD that means
every object of its kind, on every cluster the profile reaches. Real charts
drop CRDs from an upgrade's manifest without meaning to: kserve-crd renders
`clusterstoragecontainers.serving.kserve.io` only when a `lookup` finds no
such CRD, so its second render never contains it. Helm skips deleting any
object whose live copy is annotated `helm.sh/resource-policy: keep`.

Used three ways: `keep_crds` is the text transform of Helm's post-renderer
(`engine.adapters.postrender`), which annotates every CRD a chart renders
from templates/ (Helm never deletes the CRDs of a crds/ folder); `crd_names`
and `removed_crds` let `flotilla plan` and DryRun say "this upgrade would
remove CRD X"; `lacks_keep` finds live CRDs a release installed before this
guard existed. Pure: text and plain dicts in, text and names out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

RESOURCE_POLICY = "helm.sh/resource-policy"
KEEP = "keep"
_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader: CRDs run to megabytes


def is_crd(doc: Any) -> bool:
    return (isinstance(doc, Mapping) and doc.get("kind") == "CustomResourceDefinition"
            and str(doc.get("apiVersion", "")).startswith("apiextensions.k8s.io/"))


def crd_names(docs: Iterable[Any]) -> list[str]:
    """Names of the CRDs among rendered objects, in order, each once."""
    names: dict[str, None] = {}
    for doc in docs:
        if is_crd(doc):
            name = (doc.get("metadata") or {}).get("name")
            if name:
                names[str(name)] = None
    return list(names)


def removed_crds(current: Iterable[Any], new: Iterable[Any]) -> list[str]:
    """CRDs the current revision has and the new render lacks: what an upgrade deletes."""
    kept = set(crd_names(new))
    return sorted(name for name in crd_names(current) if name not in kept)


def lacks_keep(live: Any) -> bool:
    """A live CRD that Helm would delete when its release drops or uninstalls it."""
    annotations = ((live or {}).get("metadata") or {}).get("annotations") or {}
    return is_crd(live) and annotations.get(RESOURCE_POLICY) != KEEP


def crd_docs(stream: str) -> list[dict[str, Any]]:
    """The CRDs of a manifest stream (`helm get manifest`), parsing no other document."""
    found = []
    for chunk in _SEPARATOR.split(stream):
        if "CustomResourceDefinition" in chunk:
            doc = yaml.load(chunk, Loader=_Loader)
            if is_crd(doc):
                found.append(doc)
    return found


def keep_crds(stream: str) -> str:
    """The post-render transform: annotate every CRD `keep`, leave every other byte alone.

    Helm hands over all rendered manifests as one YAML stream. Only documents
    that are CRDs are parsed and re-written, as JSON (valid YAML that needs no
    quoting decisions), after their leading comment lines (`# Source: ...`).
    """
    chunks = _SEPARATOR.split(stream)
    out = []
    for chunk in chunks:
        if "CustomResourceDefinition" not in chunk:
            out.append(chunk)
            continue
        doc = yaml.load(chunk, Loader=_Loader)
        if not is_crd(doc):
            out.append(chunk)
            continue
        metadata = doc["metadata"] = dict(doc.get("metadata") or {})
        metadata["annotations"] = {**(metadata.get("annotations") or {}), RESOURCE_POLICY: KEEP}
        lines = chunk.lstrip("\n").splitlines()
        comments = lines[:_leading_comments(lines)]
        body = json.dumps(doc, default=str, separators=(",", ":"))
        out.append("\n" + "\n".join([*comments, body]) + "\n")
    return "---".join(out)


def _leading_comments(lines: list[str]) -> int:
    count = 0
    for line in lines:
        if line.startswith("#") or not line.strip():
            count += 1
        else:
            break
    return count
