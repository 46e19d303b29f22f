"""Compare what Flotilla applied with what is live, and notice fights over an object.

Used by the controller's drift engine (`engine.controller.driftctl`), by the
`flotilla plan` / DryRun previews and by the workload adapter (which applies
`strip_excluded` before a re-apply). Purely computational: no I/O, no clock.

Objects are plain JSON mappings in the API server's camelCase form. Only the
fields the desired object sets are compared, because the API server and
admission webhooks add fields (status, uid, `restartPolicy`, injected
sidecars) that must never count as drift; correcting them would start a fight
we cannot win. Paths are RFC 6901 JSON pointers into the *desired* object
(so list indices are desired indices), the same pointers `driftExclusions`
uses.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.model import types

IGNORE_ANNOTATION = "flotilla.dev/drift-ignore"
# Written by the API server or other controllers, never by us.
SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
SERVER_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
)

Tokens = tuple[str, ...]

# The API server rewrites resource quantities into canonical form ("1000m" →
# "1", "1024Mi" → "1Gi"), so under these keys equal amounts are equal values.
_QUANTITY_PARENTS = frozenset(
    {
        "limits",
        "requests",
        "hard",
        "capacity",
        "overhead",
        "default",
        "defaultRequest",
        "max",
        "min",
    }
)
_QUANTITY_KEYS = frozenset({"sizeLimit", "storage"})
_QUANTITY = re.compile(
    r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?"
)
_SUFFIX = {
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{
        s: Decimal(10) ** e
        for s, e in zip("numkMGTPE", (-9, -6, -3, 3, 6, 9, 12, 15, 18), strict=True)
    },
}
_BAD_ESCAPE = re.compile(r"~(?![01])")
_MISSING: Any = object()  # a key absent from the live object


@dataclass(frozen=True)
class Change:
    """One drifted field: its pointer, the desired value, the live one (None if absent)."""

    path: str
    desired: Any
    live: Any


@dataclass(frozen=True)
class DriftReport:
    """The result of `diff`; `paths` and `changes` are sorted by pointer."""

    drifted: bool
    deleted: bool = False
    paths: tuple[str, ...] = ()
    changes: tuple[Change, ...] = ()


def parse_pointer(pointer: str) -> Tokens:
    """The reference tokens of an RFC 6901 pointer; "" is the whole document."""
    if pointer == "":
        return ()
    if not pointer.startswith("/") or _BAD_ESCAPE.search(pointer):
        raise ValueError(f"not a JSON pointer (RFC 6901): {pointer!r}")
    # ~1 before ~0, so that "~01" becomes "~1" and not "/".
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


def format_pointer(tokens: Sequence[str]) -> str:
    """The RFC 6901 pointer for `tokens`, escaping "~" and "/" inside them."""
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def normalise(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `obj` without what the API server populates, in the form it stores.

    Idempotent. A Secret's `stringData` is folded into base64 `data`, as the
    API server does on write; otherwise a Secret written with `stringData`
    would look drifted forever.
    """
    out = copy.deepcopy(dict(obj))
    out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, Mapping):
        meta = {k: v for k, v in meta.items() if k not in SERVER_METADATA}
        annotations = meta.get("annotations")
        if isinstance(annotations, Mapping):
            kept = {k: v for k, v in annotations.items() if k not in SERVER_ANNOTATIONS}
            if kept or len(kept) == len(annotations):
                meta["annotations"] = kept
            else:
                del meta["annotations"]  # emptied by us: as if never set
        out["metadata"] = meta
    string_data = out.get("stringData")
    if out.get("kind") == "Secret" and isinstance(string_data, Mapping):
        data = dict(out.get("data") or {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        out["data"] = data
        del out["stringData"]
    return out


def diff(
    desired: Mapping[str, Any],
    live: Mapping[str, Any] | None,
    *,
    exclusions: Sequence[str] = (),
) -> DriftReport:
    """How `live` departs from `desired`, comparing only the fields `desired` sets.

    Maps: extra live keys are ignored. Lists of maps that all carry a unique
    `name` are matched by name and extra live entries ignored (they belong to
    other field managers, e.g. injected sidecars). Other lists are compared by
    index, extra or missing entries included. A desired null, `{}` or `[]`
    sets nothing and is not compared. `exclusions` are JSON pointers; each
    hides its whole subtree. Raises ValueError for a malformed pointer.
    """
    excluded = tuple(parse_pointer(pointer) for pointer in exclusions)
    if live is None:
        return DriftReport(drifted=True, deleted=True)
    changes: list[Change] = []
    _walk(normalise(desired), normalise(live), (), excluded, changes)
    changes.sort(key=lambda change: change.path)
    return DriftReport(
        drifted=bool(changes),
        paths=tuple(change.path for change in changes),
        changes=tuple(changes),
    )


def strip_excluded(obj: Mapping[str, Any], exclusions: Sequence[str]) -> dict[str, Any]:
    """A copy of `obj` without the excluded subtrees, so a re-apply never overwrites them.

    List indices in the pointers refer to `obj` as given: removing entry 1
    does not shift what "/…/2" means. Exclusions should name map keys: the API
    server replaces an index-compared list whole, so dropping one of its
    entries from the applied object removes it from the live one too.
    """
    excluded = tuple(parse_pointer(pointer) for pointer in exclusions)
    if () in excluded:
        return {}
    stripped = _strip(obj, (), excluded)
    assert isinstance(stripped, dict)
    return stripped


def excluded_by_annotation(obj: Mapping[str, Any]) -> bool:
    """True when the object carries `flotilla.dev/drift-ignore: "true"`."""
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    if not isinstance(annotations, Mapping):
        return False
    return str(annotations.get(IGNORE_ANNOTATION, "")).strip().lower() == "true"


def _is_excluded(tokens: Tokens, excluded: tuple[Tokens, ...]) -> bool:
    return any(tokens[: len(prefix)] == prefix for prefix in excluded)


def _unspecified(value: Any) -> bool:
    # The API server drops empty and null fields, so they cannot be checked.
    return value is None or (isinstance(value, Mapping | list) and not value)


def _walk(
    desired: Any, live: Any, tokens: Tokens, excluded: tuple[Tokens, ...], out: list[Change]
) -> None:
    if _is_excluded(tokens, excluded) or _unspecified(desired):
        return
    if live is _MISSING:
        out.append(Change(format_pointer(tokens), desired, None))
    elif isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            out.append(Change(format_pointer(tokens), desired, live))
            return
        for key, value in desired.items():
            _walk(value, live.get(key, _MISSING), (*tokens, str(key)), excluded, out)
    elif isinstance(desired, list):
        if not isinstance(live, list):
            out.append(Change(format_pointer(tokens), desired, live))
        elif _named(desired):
            by_name = {x["name"]: x for x in live if isinstance(x, Mapping) and "name" in x}
            for index, item in enumerate(desired):
                _walk(
                    item, by_name.get(item["name"], _MISSING), (*tokens, str(index)), excluded, out
                )
        else:
            for index in range(max(len(desired), len(live))):
                child = (*tokens, str(index))
                if index >= len(desired):
                    if not _is_excluded(child, excluded):
                        out.append(Change(format_pointer(child), None, live[index]))
                else:
                    found = live[index] if index < len(live) else _MISSING
                    _walk(desired[index], found, child, excluded, out)
    elif not _same_scalar(desired, live, quantity=_is_quantity(tokens)):
        out.append(Change(format_pointer(tokens), desired, live))


def _named(items: list[Any]) -> bool:
    """True for lists keyed by `name` (containers, env, ports, volumes)."""
    if not all(isinstance(item, Mapping) and isinstance(item.get("name"), str) for item in items):
        return False
    return len({item["name"] for item in items}) == len(items)


def _is_quantity(tokens: Tokens) -> bool:
    return bool(tokens) and (
        tokens[-1] in _QUANTITY_KEYS or (len(tokens) > 1 and tokens[-2] in _QUANTITY_PARENTS)
    )


def _same_scalar(desired: Any, live: Any, *, quantity: bool) -> bool:
    # bool is an int subclass: True must not equal 1.
    if isinstance(desired, bool) or isinstance(live, bool):
        return type(desired) is type(live) and desired == live
    if desired == live:
        return True
    if quantity:
        amount = _quantity(desired)
        return amount is not None and amount == _quantity(live)
    # int-or-string fields (ports, maxSurge): 8080 and "8080" are the same setting.
    if (isinstance(desired, int) and isinstance(live, str)) or (
        isinstance(desired, str) and isinstance(live, int)
    ):
        return str(desired) == str(live)
    return False


def _quantity(value: Any) -> Decimal | None:
    """A Kubernetes resource quantity ("500m", "1Gi", "1e3", 2) as an exact number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    match = _QUANTITY.fullmatch(str(value).strip())
    if match is None:
        return None
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        return None
    suffix = match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number.scaleb(int(suffix[1:]))
    return number * _SUFFIX[suffix] if suffix else number


def _strip(node: Any, tokens: Tokens, excluded: tuple[Tokens, ...]) -> Any:
    if not any(prefix[: len(tokens)] == tokens for prefix in excluded):
        return copy.deepcopy(node)  # no exclusion reaches below here
    if isinstance(node, Mapping):
        children = ((str(key), key, value) for key, value in node.items())
        return {
            key: _strip(value, (*tokens, token), excluded)
            for token, key, value in children
            if not _is_excluded((*tokens, token), excluded)
        }
    if isinstance(node, list):
        return [
            _strip(value, (*tokens, str(index)), excluded)
            for index, value in enumerate(node)
            if not _is_excluded((*tokens, str(index)), excluded)
        ]
    return copy.deepcopy(node)


@dataclass(frozen=True)
class _Fight:
    recent: tuple[float, ...]  # correction times inside the window
    level: int  # back-off level; 0 while no back-off is due
    last: float  # time of the latest correction


class FightDetector:
    """Notices when another actor keeps reverting an object we correct.

    After `threshold` corrections of one key within `window` seconds, the
    next correction waits `base_delay`, and every further correction during
    the fight doubles the wait, up to `max_delay`. The fight is over once the
    key stays clean for `window` seconds after its back-off ends. Pure apart
    from its own memory: time is always passed in.
    """

    def __init__(
        self,
        *,
        threshold: int = 3,
        window: float = 60.0,
        base_delay: float = 10.0,
        max_delay: float = 300.0,
    ) -> None:
        self.threshold = threshold
        self.window = window
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._fights: dict[str, _Fight] = {}

    def delay(self, level: int) -> float:
        """The back-off after a correction at `level` (0: none)."""
        return 0.0 if level <= 0 else min(self.max_delay, self.base_delay * 2 ** (level - 1))

    def record_correction(self, key: str, now: float) -> None:
        fight = self._fights.get(key)
        if fight is not None and not self._ongoing(fight, now):
            fight = None
        previous = fight.recent if fight is not None else ()
        recent = (*(t for t in previous if now - t < self.window), now)
        level = fight.level if fight is not None else 0
        if level > 0 or len(recent) >= self.threshold:
            level += 1
        self._fights[key] = _Fight(recent=recent, level=level, last=now)

    def should_back_off(self, key: str, now: float) -> tuple[bool, float]:
        """(True, seconds left) while a correction of `key` must wait."""
        fight = self._fights.get(key)
        if fight is None:
            return False, 0.0
        remaining = fight.last + self.delay(fight.level) - now
        return (True, remaining) if remaining > 0 else (False, 0.0)

    def is_fighting(self, key: str, now: float) -> bool:
        fight = self._fights.get(key)
        return fight is not None and fight.level > 0 and self._ongoing(fight, now)

    def forget(self, key: str) -> None:
        """Drop what is known about `key` (object deleted or no longer managed)."""
        self._fights.pop(key, None)

    def prune(self, now: float) -> None:
        """Forget keys whose fights are over, so memory follows live objects."""
        for key in [k for k, fight in self._fights.items() if not self._ongoing(fight, now)]:
            del self._fights[key]

    def _ongoing(self, fight: _Fight, now: float) -> bool:
        return now - fight.last <= self.delay(fight.level) + self.window


def exclusions_for(pspec: types.ProfileSpec, obj: Mapping[str, Any]) -> list[str]:
    """JSON pointers excluded for this object by spec.driftExclusions."""
    out: list[str] = []
    meta = obj.get("metadata") or {}
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    for exclusion in pspec.drift_exclusions:
        t = exclusion.target
        if t is not None and not all((
            not t.kind or t.kind == obj.get("kind"),
            not t.group or t.group == group,
            not t.version or t.version == version,
            not t.namespace or t.namespace == (meta.get("namespace") or ""),
            not t.name or t.name == meta.get("name"),
        )):
            continue
        out.extend(exclusion.paths)
    return out
