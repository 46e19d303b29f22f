"""Health checks in Sveltos' `ValidateHealth` shape: profile `validateHealths[]` and catalog
`healthChecks[]`.

Used by `model.types` (both lists hold `HealthCheck`), by `engine.health`, which
judges live objects with a check, by the deployers, which list the objects a check
selects (`list_selector`), and by the deployment step, which runs each check after
the feature it names (`feature_id`). Pure data.

Field names and meanings follow Sveltos (`config.projectsveltos.io/v1beta1`):
`evaluateCEL` is a list of named rules (the first that returns true makes the
object healthy), `script` a Lua `evaluate()` function, `labelFilters` the
{key, operation, value} filters, `featureID` the feature the check follows,
`jobCheck` a Job (from a ConfigMap/Secret) whose outcome is the verdict.
Beyond Sveltos: `objectName` and `labelSelector` (kubectl syntax) narrow the
objects further.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any, Self

from engine import errors
from engine.model._fields import Reader

DEFAULT_JOB_TIMEOUT = 300.0  # Sveltos' default for jobCheck.timeout: 5 minutes


class FeatureID(enum.StrEnum):
    RESOURCES = "Resources"
    HELM = "Helm"
    KUSTOMIZE = "Kustomize"


class LabelOperation(enum.StrEnum):
    EQUAL = "Equal"
    DIFFERENT = "Different"
    HAS = "Has"
    DOES_NOT_HAVE = "DoesNotHave"


@dataclasses.dataclass(frozen=True, slots=True)
class CelRule:
    """One named CEL rule; it sees the object as `resource` (Sveltos) or `object`."""

    name: str
    rule: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        return cls(name=r.required_text("name"), rule=r.required_text("rule"))


@dataclasses.dataclass(frozen=True, slots=True)
class LabelFilter:
    key: str
    operation: LabelOperation
    value: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        return cls(key=r.required_text("key"), operation=r.enum("operation", LabelOperation),
                   value=r.text("value"))

    def requirement(self) -> str:
        """This filter as one term of a kubectl label selector."""
        if self.operation is LabelOperation.EQUAL:
            return f"{self.key}={self.value}"
        if self.operation is LabelOperation.DIFFERENT:
            return f"{self.key}!={self.value}"
        if self.operation is LabelOperation.HAS:
            return self.key
        return f"!{self.key}"


@dataclasses.dataclass(frozen=True, slots=True)
class JobRef:
    """The ConfigMap or Secret (management cluster) holding a jobCheck's Job manifest."""

    kind: str
    name: str
    namespace: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        kind = r.text("kind", "ConfigMap")
        if kind not in ("ConfigMap", "Secret"):
            raise errors.SpecError(f"expected ConfigMap or Secret, got {kind!r}",
                                   field=r.at("kind"))
        return cls(kind=kind, name=r.required_text("name"), namespace=r.text("namespace"))


@dataclasses.dataclass(frozen=True, slots=True)
class JobCheck:
    """Sveltos' Job-based check: a Job run on the workload cluster, judged by its outcome."""

    job_ref: JobRef
    timeout: float = DEFAULT_JOB_TIMEOUT  # seconds

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        timeout = r.optional_duration("timeout")
        return cls(job_ref=r.required_object("jobRef", JobRef),
                   timeout=timeout or DEFAULT_JOB_TIMEOUT)


@dataclasses.dataclass(frozen=True, slots=True)
class HealthCheck:
    name: str
    version: str
    kind: str
    group: str = ""
    feature_id: FeatureID | None = None
    namespace: str | None = None
    object_name: str | None = None
    label_selector: str | None = None
    label_filters: tuple[LabelFilter, ...] = ()
    evaluate_cel: tuple[CelRule, ...] = ()
    script: str = ""
    job_check: JobCheck | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        if isinstance(data.get("evaluateCEL"), str):
            # The single-expression form of earlier Flotilla releases.
            raise errors.SpecError(
                "evaluateCEL is a list of named rules, as in Sveltos: "
                "[{name: ready, rule: \"resource.status...\"}]", field=r.at("evaluateCEL"))
        rules = r.objects("evaluateCEL", CelRule)
        names = [rule.name for rule in rules]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise errors.SpecError(f"rule name {name!r} is used twice",
                                       field=r.at(f"evaluateCEL[{index}].name"))
        job_check = r.optional_object("jobCheck", JobCheck)
        return cls(
            name=r.required_text("name"),
            feature_id=(r.enum("featureID", FeatureID) if data.get("featureID") is not None
                        else None),
            group=r.text("group"),
            # A jobCheck names no objects, so it needs no version or kind.
            version=r.text("version") if job_check else r.required_text("version"),
            kind=r.text("kind") if job_check else r.required_text("kind"),
            namespace=r.optional_text("namespace"),
            object_name=r.optional_text("objectName"),
            label_selector=r.optional_text("labelSelector"),
            label_filters=r.objects("labelFilters", LabelFilter),
            evaluate_cel=rules,
            script=r.text("script"),
            job_check=job_check,
        )

    @property
    def list_selector(self) -> str | None:
        """The label selector the objects are listed with: labelSelector AND labelFilters."""
        terms = [self.label_selector] if self.label_selector else []
        terms += [f.requirement() for f in self.label_filters]
        return ",".join(terms) or None
