"""Cluster selection: which WorkloadClusters a profile applies to.

Used by the profile reconciler and `flotilla plan` (`select_clusters`), and
by `flotilla why` (`explain`: the same decision, check by check). Also
home of the shared CEL machinery (`compile_cel`, `CelProgram`), which
`health` reuses for its checks. Label selectors are matched by `engine.labels`.
Pure: clusters come in as plain dicts, decisions go out as data.

Rules (DESIGN §1): a label selector has Kubernetes semantics, except that an
empty or absent selector matches nothing — selecting the whole fleet takes
an explicit expression, never an omission. `clusterSelector` and
`clusterSelectorCEL` must both hold when both are set; `clusterRefs` add
clusters on top.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import celpy
import celpy.adapter
import celpy.celparser
import celpy.celtypes
import celpy.evaluation

from engine import errors, labels
from engine.model import types

SelectionReason = Literal["Selector", "ClusterRefs"]


@dataclasses.dataclass(frozen=True, slots=True)
class Selection:
    """One selected cluster and why it was selected."""

    namespace: str
    name: str
    reason: SelectionReason


def label_selector_matches(
    selector: types.LabelSelector | None, cluster_labels: Mapping[str, str] | None
) -> bool:
    """Kubernetes label-selector semantics, except that an empty selector matches nothing."""
    if selector is None or selector.empty:
        return False
    return labels.matches(
        cluster_labels,
        match_labels=selector.match_labels,
        match_expressions=selector.match_expressions,
    )


def select_clusters(
    spec: types.ProfileSpec,
    clusters: Sequence[Mapping[str, Any]],
    *,
    namespace: str | None,
) -> list[Selection]:
    """The clusters a profile selects, sorted by (namespace, name).

    `namespace` is None for a ClusterProfile, else the Profile's namespace:
    only clusters there are eligible, and refs to other namespaces are
    ignored. Refs name existing clusters only; a ref to a cluster that is
    not registered selects nothing until it is. Paused clusters are still
    selected: pausing is the controller's decision, not selection's.

    An empty `clusterSelector` next to a CEL expression counts as absent, so
    `clusterSelectorCEL: "true"` is the explicit way to take the whole fleet.
    """
    selector = (
        spec.cluster_selector if spec.cluster_selector and not spec.cluster_selector.empty else None
    )
    program = (
        compile_cel(spec.cluster_selector_cel, field="spec.clusterSelectorCEL")
        if spec.cluster_selector_cel
        else None
    )
    # A ClusterProfile ref without a namespace means "default", as kubectl does.
    refs = {(ref.namespace or namespace or "default", ref.name) for ref in spec.cluster_refs}

    selected: dict[tuple[str, str], Selection] = {}
    for cluster in clusters:
        metadata = cluster.get("metadata") or {}
        key = (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
        if not key[1] or (namespace is not None and key[0] != namespace):
            continue
        if (selector or program) and _holds(selector, program, cluster):
            selected[key] = Selection(namespace=key[0], name=key[1], reason="Selector")
        elif key in refs:
            selected[key] = Selection(namespace=key[0], name=key[1], reason="ClusterRefs")
    return [selected[key] for key in sorted(selected)]


def _holds(
    selector: types.LabelSelector | None, program: CelProgram | None, cluster: Mapping[str, Any]
) -> bool:
    """Whether every selector that is set (labels, CEL) matches the cluster."""
    metadata = cluster.get("metadata") or {}
    if selector and not label_selector_matches(selector, metadata.get("labels")):
        return False
    return program is None or program.matches(variable="cluster", value=cluster)


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """One part of a selection decision: which field, whether it holds, and the facts."""

    field: str  # "namespace", "clusterSelector", "clusterSelectorCEL" or "clusterRefs"
    holds: bool
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class Explanation:
    """Whether a profile selects one cluster, why (`reason`), and every check behind it."""

    selected: bool
    reason: SelectionReason | None
    checks: tuple[Check, ...]


def explain(
    spec: types.ProfileSpec, cluster: Mapping[str, Any], *, namespace: str | None
) -> Explanation:
    """Why `select_clusters` does or does not select `cluster` (`flotilla why`).

    The same rules, one check at a time: each matchLabels pair and
    matchExpressions requirement with the label the cluster has, the CEL
    expression's result (or its error), and whether `clusterRefs` names the
    cluster. Raises SpecError as `select_clusters` does for a CEL expression
    that does not compile.
    """
    metadata = cluster.get("metadata") or {}
    key = (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
    have: Mapping[str, str] = metadata.get("labels") or {}
    if namespace is not None and key[0] != namespace:
        check = Check("namespace", False, f"a Profile in {namespace} selects only clusters "
                      f"in {namespace}; this one is in {key[0]}")
        return Explanation(selected=False, reason=None, checks=(check,))
    checks: list[Check] = []
    selector = spec.cluster_selector
    if selector is not None and not selector.empty:
        for label, value in selector.match_labels.items():
            shown = f"has {label}={have[label]}" if label in have else f"has no {label}"
            checks.append(Check("clusterSelector", have.get(label) == value,
                                f"matchLabels {label}={value}: cluster {shown}"))
        for expr in selector.match_expressions:
            values = f" ({', '.join(expr.values)})" if expr.values else ""
            shown = f"has {expr.key}={have[expr.key]}" if expr.key in have \
                else f"has no {expr.key}"
            checks.append(Check("clusterSelector", labels.holds(expr, have),
                                f"matchExpressions {expr.key} {expr.operator}{values}: "
                                f"cluster {shown}"))
    if spec.cluster_selector_cel:
        program = compile_cel(spec.cluster_selector_cel, field="spec.clusterSelectorCEL")
        try:
            result = program.evaluate(variable="cluster", value=cluster)
            checks.append(Check("clusterSelectorCEL", result,
                                f"{spec.cluster_selector_cel} is {str(result).lower()}"))
        except CelEvaluationError as error:
            checks.append(Check("clusterSelectorCEL", False,
                                f"{spec.cluster_selector_cel} cannot be evaluated: {error}"))
    by_labels = bool(checks) and all(c.holds for c in checks)
    if not checks:
        checks.append(Check("clusterSelector", False, "no clusterSelector and no "
                            "clusterSelectorCEL: selects no cluster by labels"))
    refs = {(ref.namespace or namespace or "default", ref.name) for ref in spec.cluster_refs}
    if spec.cluster_refs:
        named = key in refs
        checks.append(Check("clusterRefs", named, f"names {key[0]}/{key[1]}" if named
                            else f"does not name {key[0]}/{key[1]}"))
    reason: SelectionReason | None = "Selector" if by_labels else (
        "ClusterRefs" if key in refs else None)
    return Explanation(selected=reason is not None, reason=reason, checks=tuple(checks))


@dataclasses.dataclass(frozen=True, slots=True)
class CelValue:
    """An input converted to CEL values once, for several programs (health rules)."""

    converted: Any

    @classmethod
    def of(cls, value: Mapping[str, Any]) -> CelValue:
        return cls(_to_cel(value))


class CelEvaluationError(Exception):
    """A CEL expression failed on one input (e.g. a missing field); the message says why."""


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class CelProgram:
    """A compiled CEL expression; compile through `compile_cel` to share the cache."""

    expression: str
    runner: celpy.Runner

    def evaluate(self, *, variable: str, value: Mapping[str, Any] | CelValue,
                 aliases: Sequence[str] = ()) -> bool:
        """Evaluate with `value` bound to `variable` (and to each of `aliases`); raise
        CelEvaluationError unless the result is a bool."""
        converted = value.converted if isinstance(value, CelValue) else _to_cel(value)
        activation = {name: converted for name in (variable, *aliases)}
        try:
            # CompiledRunner executes in celpy.evaluation's module globals
            # (`base_activation`, `CEL`), so concurrent evaluations from
            # handler threads would read each other's inputs.
            with _EVALUATION_LOCK:
                result = self.runner.evaluate(activation)
        except Exception as error:  # celpy raises assorted types from deep inside
            raise CelEvaluationError(_describe(error)) from error
        if isinstance(result, celpy.evaluation.CELEvalError):
            raise CelEvaluationError(_describe(result))
        if not isinstance(result, (bool, celpy.celtypes.BoolType)):
            kind = type(result).__name__.removesuffix("Type").lower()
            shown = str(result)
            raise CelEvaluationError(f"expression returned {kind} {shown}, not a bool")
        return bool(result)

    def matches(self, *, variable: str, value: Mapping[str, Any]) -> bool:
        """Like `evaluate`, but an evaluation error or a non-bool means "no match"."""
        try:
            return self.evaluate(variable=variable, value=value)
        except CelEvaluationError:
            return False


def compile_cel(expression: str, *, field: str, reason: str = "InvalidCEL") -> CelProgram:
    """Compile (once per expression text) or raise SpecError(field, reason)."""
    compiled = _compile(expression)
    if isinstance(compiled, str):
        raise errors.SpecError(
            f"CEL expression does not compile: {compiled}", field=field, reason=reason
        )
    return compiled


_EVALUATION_LOCK = threading.Lock()
# celpy logs every failed evaluation at ERROR level; a cluster lacking a fact
# is an ordinary "no match", so our transpilers log into a silent logger.
_SILENT = logging.Logger("engine.select.cel", level=logging.CRITICAL + 1)
# The transpiled `has()` macro yields a Python bool, which celpy's own
# logical operators reject ("no such overload"): `has(x) && x == 1` fails
# exactly when `x` is missing. Wrapping it in BoolType restores CEL semantics.
_HAS_MACRO = re.compile(
    r"= lambda activation: "
    r"(not isinstance\(celpy\.evaluation\.result\(activation, ex_\d+_h\), CELEvalError\))"
)


class _Runner(celpy.CompiledRunner):
    """celpy's CompiledRunner (~5x faster than the interpreter) with `has()` fixed."""

    def __init__(self, environment: celpy.Environment, ast: Any, functions: Any = None) -> None:
        super().__init__(environment, ast, functions)
        transpiler = self.tp
        transpiler.logger = _SILENT
        fixed = _HAS_MACRO.sub(
            r"= lambda activation: celpy.celtypes.BoolType(\1)", transpiler.source_text
        )
        if fixed != transpiler.source_text:
            transpiler.source_text = fixed
            transpiler.executable_code = compile(fixed, "<cel>", "exec")


@functools.cache
def _environment() -> celpy.Environment:
    return celpy.Environment(runner_class=_Runner)


@functools.lru_cache(maxsize=1024)
def _compile(expression: str) -> CelProgram | str:
    """A compiled program, or the compile error as text (so failures are cached too)."""
    environment = _environment()
    try:
        ast = environment.compile(expression)
        if not isinstance(ast, celpy.evaluation.TranspilerTree):
            # celpy keeps one process-wide parser whose tree class is fixed by
            # whoever built it first; the transpiler needs TranspilerTree nodes.
            celpy.celparser.CELParser.CEL_PARSER = None
            environment.cel_parser = celpy.celparser.CELParser(
                tree_class=celpy.evaluation.TranspilerTree
            )
            ast = environment.compile(expression)
        return CelProgram(expression=expression, runner=environment.program(ast))
    except Exception as error:  # parse and transpile errors come in several types
        return _describe(error)


_MAP, _LIST, _STRING = celpy.celtypes.MapType, celpy.celtypes.ListType, celpy.celtypes.StringType
_INT, _DOUBLE = celpy.celtypes.IntType, celpy.celtypes.DoubleType
_TRUE, _FALSE = celpy.celtypes.BoolType(True), celpy.celtypes.BoolType(False)
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def _to_cel(value: Any) -> Any:
    """Convert a JSON-like tree (any Mapping/Sequence) into CEL values.

    What celpy.adapter.json_to_cel makes, built without its per-item checks: a
    cluster body converts ~2x faster, and the plan index converts every cluster of
    the fleet when a CEL selector is planned after a restart.
    """
    kind = type(value)
    if kind is str:
        return str.__new__(_STRING, value)
    if kind is bool:
        return _TRUE if value else _FALSE
    if kind is int and _INT_MIN <= value <= _INT_MAX:  # out of range: celpy's error below
        return int.__new__(_INT, value)
    if kind is float:
        return float.__new__(_DOUBLE, value)
    if isinstance(value, Mapping):
        converted = dict.__new__(_MAP)  # MapType.__init__ with no items does nothing more
        dict.update(converted, {str.__new__(_STRING, str(k)): _to_cel(v)
                                for k, v in value.items()})
        return converted
    if isinstance(value, (list, tuple)):
        return _LIST([_to_cel(item) for item in value])
    return celpy.adapter.json_to_cel(value)


def _describe(error: BaseException) -> str:
    """A one-line message from celpy's nested error tuples."""
    if isinstance(error, celpy.celparser.CELParseError):
        return f"syntax error at line {error.line or 1}, column {error.column or 1}"
    args: tuple[Any, ...] = error.args
    # CELEvalError args look like (message, exception class, nested args);
    # the compiled runner wraps the real error one level deeper.
    while (
        len(args) >= 3 and args[1] is celpy.evaluation.CELEvalError and isinstance(args[2], tuple)
    ):
        args = args[2]
    message = str(args[0]) if args else str(error)
    if len(args) >= 3 and isinstance(args[2], tuple) and args[2]:
        # The detail: the overload that failed, the function that is unbound.
        detail = str(args[2][0])
        if detail.startswith(message):
            message = detail
        elif detail not in message:
            message = f"{message}: {detail}"
    message = " ".join(message.split())
    return message[:300] if message else type(error).__name__
