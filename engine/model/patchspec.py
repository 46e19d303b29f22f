"""The spec shapes of a profile's `patches`: Sveltos' `Patch` and `PatchSelector`.

Read by `types.ProfileSpec.from_dict`; turned into `engine.patches.Patch`
(the pure transform) by the ClusterSummary's desired state, once the patch
text has been templated for the cluster. Field names are Sveltos' (which are
kustomize's): `patch` and `target {group, version, kind, name, namespace,
labelSelector, annotationSelector}`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Self

from engine.model._fields import Reader


@dataclasses.dataclass(frozen=True, slots=True)
class PatchSelector:
    """Objects a patch applies to: regular expressions, and kubectl selectors over marks."""

    group: str = ""
    version: str = ""
    kind: str = ""
    name: str = ""
    namespace: str = ""
    label_selector: str = ""
    annotation_selector: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        return cls(group=r.text("group"), version=r.text("version"), kind=r.text("kind"),
                   name=r.text("name"), namespace=r.text("namespace"),
                   label_selector=r.text("labelSelector"),
                   annotation_selector=r.text("annotationSelector"))


@dataclasses.dataclass(frozen=True, slots=True)
class PatchSpec:
    """A strategic merge or JSON 6902 patch (a Jinja2 template), and what it targets."""

    patch: str
    target: PatchSelector | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        return cls(patch=r.required_text("patch"),
                   target=r.optional_object("target", PatchSelector))
