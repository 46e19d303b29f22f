"""Per-chart Helm options: Sveltos' `helmCharts[].options` shape, merged and resolved.

Used by `model.types` (profile `helmCharts[].options`, `services[].options`,
CatalogService `spec.helmOptions`), by `catalog.resolve`, which merges the
catalog's defaults under a profile's options into each `ReleasePlan`, and by
the Helm adapter, which turns the resolved values into helm flags.

Every field is optional here (None = "not set") so that merging can tell "the
profile did not say" from "the profile said false": a profile value wins over
the catalog's, a catalog value over Flotilla's default. `resolved()` applies
the defaults documented in docs/api.md. Durations are seconds. Pure data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Self, TypeVar

from engine import errors
from engine.model import quantities
from engine.model._fields import Reader

# Generous, because helm waits for hook Jobs under this timeout even without
# `wait` (cert-manager's startupapicheck, admission-webhook patch Jobs, ...).
DEFAULT_TIMEOUT = 600.0
DEFAULT_MAX_HISTORY = 10
DELETION_PROPAGATIONS = ("orphan", "foreground", "background")

T = TypeVar("T")


def _flag(r: Reader, key: str) -> bool | None:
    return None if r.data.get(key) is None else r.flag(key)


def _count(r: Reader, key: str) -> int | None:
    if r.data.get(key) is None:
        return None
    value = r.integer(key)
    if value < 0:
        raise errors.SpecError(f"must be >= 0, got {value}", field=r.at(key))
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class InstallOptions:
    create_namespace: bool | None = None
    replace: bool | None = None
    take_ownership: bool | None = None
    disable_hooks: bool | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        return cls(create_namespace=_flag(r, "createNamespace"), replace=_flag(r, "replace"),
                   take_ownership=_flag(r, "takeOwnership"),
                   disable_hooks=_flag(r, "disableHooks"))


@dataclasses.dataclass(frozen=True, slots=True)
class UpgradeOptions:
    force: bool | None = None
    reset_values: bool | None = None
    reuse_values: bool | None = None
    reset_then_reuse_values: bool | None = None
    recreate: bool | None = None
    max_history: int | None = None
    cleanup_on_fail: bool | None = None
    sub_notes: bool | None = None
    upgrade_crds: bool | None = None
    take_ownership: bool | None = None
    disable_hooks: bool | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        return cls(
            force=_flag(r, "force"), reset_values=_flag(r, "resetValues"),
            reuse_values=_flag(r, "reuseValues"),
            reset_then_reuse_values=_flag(r, "resetThenReuseValues"),
            recreate=_flag(r, "recreate"), max_history=_count(r, "maxHistory"),
            cleanup_on_fail=_flag(r, "cleanupOnFail"), sub_notes=_flag(r, "subNotes"),
            upgrade_crds=_flag(r, "upgradeCRDs"), take_ownership=_flag(r, "takeOwnership"),
            disable_hooks=_flag(r, "disableHooks"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class UninstallOptions:
    keep_history: bool | None = None
    deletion_propagation: str | None = None
    disable_hooks: bool | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        propagation = r.optional_text("deletionPropagation") or None
        if propagation is not None and propagation not in DELETION_PROPAGATIONS:
            raise errors.SpecError(
                f"expected one of {', '.join(DELETION_PROPAGATIONS)}, got {propagation!r}",
                field=r.at("deletionPropagation"))
        return cls(keep_history=_flag(r, "keepHistory"), deletion_propagation=propagation,
                   disable_hooks=_flag(r, "disableHooks"))


@dataclasses.dataclass(frozen=True, slots=True)
class HelmOptions:
    """`helmCharts[].options` (Sveltos names) plus Flotilla's `allowCRDDeletion`."""

    skip_crds: bool | None = None
    wait: bool | None = None
    wait_for_jobs: bool | None = None
    timeout: float | None = None
    disable_hooks: bool | None = None
    disable_openapi_validation: bool | None = None
    skip_schema_validation: bool | None = None
    atomic: bool | None = None
    dependency_update: bool | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    enable_client_cache: bool | None = None
    description: str | None = None
    install: InstallOptions = dataclasses.field(default_factory=InstallOptions)
    upgrade: UpgradeOptions = dataclasses.field(default_factory=UpgradeOptions)
    uninstall: UninstallOptions = dataclasses.field(default_factory=UninstallOptions)
    # Flotilla only: without it every CRD a chart renders is annotated
    # `helm.sh/resource-policy: keep`, so no upgrade or uninstall deletes one.
    allow_crd_deletion: bool | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        timeout = r.optional_duration("timeout")
        return cls(
            skip_crds=_flag(r, "skipCRDs"), wait=_flag(r, "wait"),
            wait_for_jobs=_flag(r, "waitForJobs"), timeout=timeout,
            disable_hooks=_flag(r, "disableHooks"),
            disable_openapi_validation=_flag(r, "disableOpenAPIValidation"),
            skip_schema_validation=_flag(r, "skipSchemaValidation"),
            atomic=_flag(r, "atomic"), dependency_update=_flag(r, "dependencyUpdate"),
            labels=r.string_map("labels"), enable_client_cache=_flag(r, "enableClientCache"),
            description=r.optional_text("description"),
            install=r.optional_object("installOptions", InstallOptions) or InstallOptions(),
            upgrade=r.optional_object("upgradeOptions", UpgradeOptions) or UpgradeOptions(),
            uninstall=(r.optional_object("uninstallOptions", UninstallOptions)
                       or UninstallOptions()),
            allow_crd_deletion=_flag(r, "allowCRDDeletion"),
        )

    @classmethod
    def catalog_defaults(cls, data: Mapping[str, Any], *, field: str) -> Self:
        """A CatalogService's `spec.helmOptions`: everything but allowCRDDeletion.

        Only a profile may allow a chart's CRDs to be deleted: the platform team's
        catalog cannot make that choice for every profile that uses the service.
        """
        if Reader(data, field).data.get("allowCRDDeletion") is not None:
            raise errors.SpecError("only a profile can set allowCRDDeletion",
                                   field=f"{field}.allowCRDDeletion")
        return cls.from_dict(data, field=field)

    @property
    def empty(self) -> bool:
        return self == HelmOptions()

    def over(self, base: HelmOptions) -> HelmOptions:
        """These options laid over `base`: each field set here wins, labels merge by key."""
        return _merge(base, self)

    def resolved(self) -> Resolved:
        """Concrete values, Flotilla's defaults where nothing was set."""
        i, u, x = self.install, self.upgrade, self.uninstall
        return Resolved(
            skip_crds=bool(self.skip_crds), wait=bool(self.wait),
            wait_for_jobs=bool(self.wait_for_jobs),
            timeout=DEFAULT_TIMEOUT if self.timeout is None else self.timeout,
            disable_hooks=bool(self.disable_hooks),
            disable_openapi_validation=bool(self.disable_openapi_validation),
            skip_schema_validation=bool(self.skip_schema_validation),
            atomic=bool(self.atomic), dependency_update=bool(self.dependency_update),
            labels=dict(self.labels), description=self.description or "",
            create_namespace=i.create_namespace is not False,
            # Sveltos' default: an uninstalled release kept in history (keepHistory) can
            # be installed again under its name.
            replace=i.replace is not False,
            install_take_ownership=bool(i.take_ownership),
            install_disable_hooks=bool(self.disable_hooks or i.disable_hooks),
            force=bool(u.force), reset_values=bool(u.reset_values),
            reuse_values=bool(u.reuse_values),
            reset_then_reuse_values=bool(u.reset_then_reuse_values),
            max_history=DEFAULT_MAX_HISTORY if u.max_history is None else u.max_history,
            cleanup_on_fail=bool(u.cleanup_on_fail), sub_notes=bool(u.sub_notes),
            upgrade_take_ownership=bool(u.take_ownership),
            upgrade_disable_hooks=bool(self.disable_hooks or u.disable_hooks),
            keep_history=bool(x.keep_history),
            deletion_propagation=x.deletion_propagation or "",
            uninstall_disable_hooks=bool(self.disable_hooks or x.disable_hooks),
            allow_crd_deletion=bool(self.allow_crd_deletion),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Resolved:
    """What helm is told, per operation; `*_disable_hooks` fold in the top-level flag."""

    skip_crds: bool = False
    wait: bool = False
    wait_for_jobs: bool = False
    timeout: float = DEFAULT_TIMEOUT
    disable_hooks: bool = False
    disable_openapi_validation: bool = False
    skip_schema_validation: bool = False
    atomic: bool = False
    dependency_update: bool = False
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    description: str = ""
    create_namespace: bool = True
    replace: bool = True
    install_take_ownership: bool = False
    install_disable_hooks: bool = False
    force: bool = False
    reset_values: bool = False
    reuse_values: bool = False
    reset_then_reuse_values: bool = False
    max_history: int = DEFAULT_MAX_HISTORY
    cleanup_on_fail: bool = False
    sub_notes: bool = False
    upgrade_take_ownership: bool = False
    upgrade_disable_hooks: bool = False
    keep_history: bool = False
    deletion_propagation: str = ""
    uninstall_disable_hooks: bool = False
    allow_crd_deletion: bool = False


def _merge(base: T, top: T) -> T:
    """Field by field: a set (non-None) value of `top` wins; nested options merge too."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(top):  # type: ignore[arg-type]
        low, high = getattr(base, f.name), getattr(top, f.name)
        if dataclasses.is_dataclass(high):
            changes[f.name] = _merge(low, high)
        elif isinstance(high, Mapping):
            changes[f.name] = {**low, **high}
        elif high is not None:
            changes[f.name] = high
    return dataclasses.replace(base, **changes)  # type: ignore[type-var]


def describe_timeout(seconds: float) -> str:
    """A timeout in helm's syntax ("10m", "90s")."""
    return quantities.format_duration(seconds)
