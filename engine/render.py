"""Values templating, values merging, manifest loading and content hashes.

Used by `catalog` (deep_merge), by the ClusterSummary reconciler (render a
release's values over the cluster, load policyRef manifests, hash what it
deploys) and by the profile reconciler (hash the desired revision). Pure
functions; chart rendering itself happens in the Helm adapter.

Templating is Jinja2 in an immutable sandbox (DESIGN §5): templates read
`cluster` (the WorkloadCluster object) but cannot call mutating methods or
reach Python internals, and a missing variable is an error rather than an
empty string, because a silently empty value is a misconfigured cluster.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import jinja2
import jinja2.sandbox
import yaml

from engine import errors

_MARKERS = ("{{", "{%")
_ENVIRONMENT = jinja2.sandbox.ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    # Values are not HTML; escaping would corrupt them.
    autoescape=False,
    keep_trailing_newline=True,
)


def is_template(text: str) -> bool:
    """Whether a string contains Jinja2 markers and must be rendered."""
    return any(marker in text for marker in _MARKERS)


def template_values(values: Any, context: Mapping[str, Any], *, field: str = "values") -> Any:
    """Return a copy of a values tree with every templated string rendered.

    Strings render to strings; dict keys are left alone. Use `template_yaml`
    when a template must produce typed values (numbers, lists).
    """
    if isinstance(values, str):
        return _render(values, context, field=field) if is_template(values) else values
    if isinstance(values, Mapping):
        return {
            key: template_values(value, context, field=f"{field}.{key}")
            for key, value in values.items()
        }
    if isinstance(values, (list, tuple)):
        return [
            template_values(item, context, field=f"{field}[{index}]")
            for index, item in enumerate(values)
        ]
    return values


def template_yaml(text: str, context: Mapping[str, Any], *, field: str = "values") -> Any:
    """Render a YAML document as a template, then parse it (None for an empty one)."""
    rendered = _render(text, context, field=field) if is_template(text) else text
    try:
        return yaml.safe_load(rendered)
    except yaml.YAMLError as error:
        raise errors.SpecError(
            f"rendered values are not valid YAML: {_one_line(error)}",
            field=field,
            reason="TemplateError",
        ) from None


def _render(source: str, context: Mapping[str, Any], *, field: str) -> str:
    try:
        return _compile(source).render(dict(context))
    except jinja2.TemplateError as error:
        kind = type(error).__name__
        raise errors.SpecError(
            f"{kind}: {_one_line(error)} in {source.strip()[:120]!r}",
            field=field,
            reason="TemplateError",
        ) from None


@functools.lru_cache(maxsize=2048)
def _compile(source: str) -> jinja2.Template:
    # Keyed by source text: every cluster of a profile renders the same
    # templates, so they are compiled once per process, not once per cluster.
    return _ENVIRONMENT.from_string(source)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `override` into a copy of `base`: dicts merge recursively, anything else replaces.

    Lists replace rather than concatenate, as in Helm, so a profile can
    shorten a list the catalog set. Neither input is modified.
    """
    merged = {key: copy.deepcopy(value) for key, value in base.items()}
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_manifests(data: Mapping[str, str], *, field: str) -> list[dict[str, Any]]:
    """Parse the multi-document YAML in ConfigMap/Secret data, keys in sorted order.

    Secret data must be base64-decoded by the caller. Empty documents are
    skipped and `kind: List` documents are flattened into their items. Each
    manifest needs apiVersion, kind and metadata.name; anything else raises
    SpecError(reason="InvalidManifest") naming the key and document.
    """
    manifests: list[dict[str, Any]] = []
    for key in sorted(data):
        try:
            documents = list(yaml.safe_load_all(data[key]))
        except yaml.YAMLError as error:
            raise errors.SpecError(
                f"key {key!r} is not valid YAML: {_one_line(error)}",
                field=field,
                reason="InvalidManifest",
            ) from None
        for index, document in enumerate(documents):
            if document is None:
                continue
            where = f"key {key!r}, document {index + 1}"
            if isinstance(document, dict) and document.get("kind") == "List":
                items = document.get("items") or []
                for number, item in enumerate(items if isinstance(items, list) else [items]):
                    manifests.append(
                        _checked(item, where=f"{where}, item {number + 1}", field=field)
                    )
            else:
                manifests.append(_checked(document, where=where, field=field))
    return manifests


def _checked(document: Any, *, where: str, field: str) -> dict[str, Any]:
    problem = ""
    if not isinstance(document, dict):
        problem = "is not an object"
    elif not isinstance(document.get("apiVersion"), str) or not document["apiVersion"]:
        problem = "has no apiVersion"
    elif not isinstance(document.get("kind"), str) or not document["kind"]:
        problem = "has no kind"
    elif not isinstance(document.get("metadata"), dict) or not isinstance(
        document["metadata"].get("name"), str
    ):
        problem = "has no metadata.name"
    if problem:
        raise errors.SpecError(f"{where} {problem}", field=field, reason="InvalidManifest")
    return dict(document)


def object_hash(obj: Any) -> str:
    """A short content hash: sha256 of canonical JSON, first 16 hex digits."""
    return hashlib.sha256(_canonical(obj)).hexdigest()[:16]


def stable_hash(*parts: Any) -> str:
    """A short hash over several JSON-able parts, independent of dict ordering."""
    return object_hash(list(parts))


def _canonical(obj: Any) -> bytes:
    # sort_keys makes dict order irrelevant; default=str keeps odd leaves
    # (enums, dates) hashable instead of failing a reconcile.
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return text.encode("utf-8")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]
