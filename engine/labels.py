"""Kubernetes label selectors: the one place labels are matched against a selector.

Used by `select` (a profile's clusterSelector, with Flotilla's "an empty
selector matches nothing" rule on top), by the rollout planner (stage
selectors, plain Kubernetes semantics) and by `catalog_lint_kinds` (a health
check's labelSelector, written in kubectl's syntax). Pure.

Kubernetes semantics: every matchLabels pair and every requirement must
hold. `In` needs the label present with one of the values; `NotIn` holds
when the label is absent or has none of them (so `a!=b` selects objects
without `a`); `Exists` and `DoesNotExist` test presence. A selector that
requires nothing matches everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]


class Expression(Protocol):
    """A `matchExpressions` entry: a `Requirement` or the model's `LabelSelectorRequirement`."""

    @property
    def key(self) -> str: ...

    @property
    def operator(self) -> str: ...

    @property
    def values(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Requirement:
    """One requirement as plain data, e.g. parsed from kubectl syntax or built in a test."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()


def holds(expression: Expression, labels: Mapping[str, str]) -> bool:
    """Whether one requirement holds for `labels`."""
    present = expression.key in labels
    match expression.operator:
        case "In":
            return present and labels[expression.key] in expression.values
        case "NotIn":
            return not present or labels[expression.key] not in expression.values
        case "Exists":
            return present
        case "DoesNotExist":
            return not present
    raise ValueError(f"unknown label selector operator {expression.operator!r}")


def matches(
    labels: Mapping[str, str] | None,
    *,
    match_labels: Mapping[str, str] | None = None,
    match_expressions: Iterable[Expression] = (),
) -> bool:
    """Whether a selector (`matchLabels` plus `matchExpressions`) selects `labels`."""
    labels = labels or {}
    if any(labels.get(key) != value for key, value in (match_labels or {}).items()):
        return False
    return all(holds(expression, labels) for expression in match_expressions)


def parse(text: str) -> tuple[Requirement, ...] | None:
    """Requirements of an equality-based selector in kubectl's syntax: "a=b,c!=d,e,!f".

    `a=b` and `a==b` become In, `a!=b` NotIn, `a` Exists and `!a`
    DoesNotExist. A set-based selector ("tier in (a, b)") gives None: it is
    not parsed here, and callers leave it unjudged.
    """
    if "(" in text:
        return None
    found: list[Requirement] = []
    for part in filter(None, (item.strip() for item in text.split(","))):
        if "!=" in part:
            key, value = part.split("!=", 1)
            found.append(Requirement(key.strip(), "NotIn", (value.strip(),)))
        elif "=" in part:
            key, value = part.replace("==", "=").split("=", 1)
            found.append(Requirement(key.strip(), "In", (value.strip(),)))
        elif part.startswith("!"):
            found.append(Requirement(part[1:].strip(), "DoesNotExist"))
        else:
            found.append(Requirement(part, "Exists"))
    return tuple(found)


_SET = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*"
                  r"(?:(in|notin)\s*\(([^)]*)\)|(==|=|!=)\s*([^\s,=!()]*))?\s*$")


def parse_selector(text: str) -> tuple[Requirement, ...]:
    """Every requirement of a selector in kubectl's syntax, set-based ones included.

    "a=b,c!=d,e in (x, y),f notin (z),g,!h". Raises ValueError naming the part it
    cannot read; an empty text requires nothing.
    """
    found: list[Requirement] = []
    for part in _split_top(text):
        match = _SET.match(part)
        if match is None or (match.group(1) and (match.group(3) or match.group(5))):
            raise ValueError(f"cannot parse label selector requirement {part!r}")
        negated, key, set_op, members, op, value = match.groups()
        if set_op:
            values = tuple(v.strip() for v in members.split(",") if v.strip())
            found.append(Requirement(key, "In" if set_op == "in" else "NotIn", values))
        elif op:
            found.append(Requirement(key, "NotIn" if op == "!=" else "In", (value,)))
        else:
            found.append(Requirement(key, "DoesNotExist" if negated else "Exists"))
    return tuple(found)


def _split_top(text: str) -> list[str]:
    """Split at commas outside parentheses ("a in (x,y),b" -> ["a in (x,y)", "b"])."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]
