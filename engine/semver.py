"""Semantic versions and npm-style ranges, for picking catalog versions.

Pure: used by `engine.catalog.pick_version`. Accepts a leading "v" on both
sides; comparators `>= > <= < =`, caret `^1.21`, tilde `~1.21.0`, `*`,
space-separated (AND) and `||` (OR). A prerelease only matches a range that
names a prerelease of the same version (npm's rule).
"""

from __future__ import annotations

import dataclasses
import re

_VERSION = re.compile(
    r"^v?(0|[1-9][0-9]*|[xX*])(?:\.(0|[1-9][0-9]*|[xX*]))?(?:\.(0|[1-9][0-9]*|[xX*]))?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$"
)
# (1,) for a release; (0, (0, n) | (1, "id"), ...) for a prerelease.
_Pre = tuple[int | tuple[int, int | str], ...]
_COMPARATOR = re.compile(r"\s*(>=|<=|>|<|=|\^|~)?\s*([^\s<>=^~|]+)")


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class Version:
    """A semantic version; orders as SemVer 2.0 does (a prerelease sorts first)."""

    major: int
    minor: int
    patch: int
    # (1,) for a release; (0, ids...) for a prerelease, so releases sort last.
    pre: _Pre = (1,)

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    @property
    def prerelease(self) -> bool:
        return self.pre[0] == 0

    @classmethod
    def parse_or_none(cls, text: str) -> Version | None:
        parts = _parts(text)
        if parts is None or None in parts[:3]:
            return None
        major, minor, patch, pre = parts
        return cls(major or 0, minor or 0, patch or 0, pre)


def _parts(text: str) -> tuple[int | None, int | None, int | None, _Pre] | None:
    """(major, minor, patch, pre) with None for missing or wildcard parts."""
    match = _VERSION.match(text.strip())
    if match is None:
        return None
    numbers = [None if n is None or n in "xX*" else int(n) for n in match.groups()[:3]]
    # A wildcard makes everything after it a wildcard too ("1.x.3" is "1.x").
    for index in range(1, 3):
        if numbers[index - 1] is None:
            numbers[index] = None
    ids = match.group(4)
    # Numeric identifiers sort numerically and before alphanumeric ones.
    pre: _Pre = (
        (0, *((0, int(i)) if i.isdigit() else (1, i) for i in ids.split("."))) if ids else (1,)
    )
    return numbers[0], numbers[1], numbers[2], pre


@dataclasses.dataclass(frozen=True, slots=True)
class VersionRange:
    """Alternatives (OR) of comparator sets (AND); `any` for "*" or empty."""

    alternatives: tuple[tuple[tuple[str, Version], ...], ...]
    any: bool = False

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        if text.strip() in ("", "*", "x", "X"):
            return cls(alternatives=((),), any=True)
        alternatives = []
        for alternative in text.split("||"):
            comparators: list[tuple[str, Version]] = []
            position = 0
            alternative = alternative.rstrip()
            if not alternative:
                raise ValueError(f"{text!r} has an empty alternative around '||'")
            while position < len(alternative):
                match = _COMPARATOR.match(alternative, position)
                parts = _parts(match.group(2)) if match else None
                if match is None or parts is None:
                    raise ValueError(f"{text!r} is neither a version nor a version range")
                comparators += _bounds(match.group(1) or "=", parts)
                position = match.end()
            alternatives.append(tuple(comparators))
        return cls(alternatives=tuple(alternatives))

    def matches(self, version: Version) -> bool:
        return any(_satisfies(version, comparators) for comparators in self.alternatives)


def _satisfies(version: Version, comparators: tuple[tuple[str, Version], ...]) -> bool:
    # As in npm, a prerelease only matches when the range names a prerelease
    # of the same major.minor.patch: "^1.2" must not pick 2.0.0-rc.1.
    if version.prerelease and not any(
        bound.prerelease and bound.core == version.core for _, bound in comparators
    ):
        return False
    return all(_compare(version, operator, bound) for operator, bound in comparators)


def _compare(version: Version, operator: str, bound: Version) -> bool:
    match operator:
        case ">=":
            return version >= bound
        case ">":
            return version > bound
        case "<=":
            return version <= bound
        case "<":
            return version < bound
        case _:
            return version == bound


def _bounds(
    operator: str, parts: tuple[int | None, int | None, int | None, _Pre]
) -> list[tuple[str, Version]]:
    """Translate one comparator, caret, tilde or x-range into plain bounds."""
    major, minor, patch, pre = parts
    if major is None:
        return []  # "*" / ">=x": no constraint
    low = Version(major, minor or 0, patch or 0, pre)
    exact = minor is not None and patch is not None
    # The first version past the x-range ("1.2" -> 1.3.0, "1" -> 2.0.0).
    after = Version(major, minor + 1, 0) if minor is not None else Version(major + 1, 0, 0)
    if operator == "^":
        if major > 0 or minor is None:
            high = Version(major + 1, 0, 0)
        elif minor > 0 or patch is None:
            high = Version(0, minor + 1, 0)
        else:
            high = Version(0, 0, patch + 1)
        return [(">=", low), ("<", high)]
    if operator == "~":
        return [(">=", low), ("<", after)]
    if exact:
        return [(operator, low)]
    return {
        "=": [(">=", low), ("<", after)],
        ">=": [(">=", low)],
        ">": [(">=", after)],
        "<": [("<", low)],
        "<=": [("<", after)],
    }[operator]
