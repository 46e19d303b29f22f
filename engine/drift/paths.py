"""JSON pointers into a desired object, and what they point at in another version of it.

Used by `engine.drift` (diff paths, exclusions) and `engine.drift.confirm`
(which looks a desired path up in the API server's version of the object and
in the live one). Pure.

Pointers are RFC 6901 and always index the *desired* object: a list whose
entries all carry a unique `name` (containers, env, ports, volumes) is
matched by name in the other version, because the API server and other
field managers may insert entries (injected sidecars) that shift indices.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

Tokens = tuple[str, ...]

MISSING: Any = object()  # what a pointer finds where the other version has nothing
_BAD_ESCAPE = re.compile(r"~(?![01])")


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


def is_excluded(tokens: Tokens, excluded: Sequence[Tokens]) -> bool:
    """True when `tokens` is one of `excluded` or lies below one."""
    return any(tokens[: len(prefix)] == prefix for prefix in excluded)


def named(items: Sequence[Any]) -> bool:
    """True for lists keyed by `name`: every entry a map with a unique string `name`."""
    if not all(isinstance(item, Mapping) and isinstance(item.get("name"), str) for item in items):
        return False
    return len({item["name"] for item in items}) == len(items)


def resolve(desired: Any, other: Any, tokens: Tokens) -> Any:
    """What `other` holds at the desired pointer `tokens`, or MISSING.

    `desired` guides the walk: where it holds a name-keyed list, the entry
    with the same name is taken from `other`; elsewhere list tokens are
    indices. Tokens past what `desired` holds (an extra live list entry)
    are followed by index.
    """
    for token in tokens:
        if isinstance(other, Mapping):
            other = other.get(token, MISSING)
            desired = desired.get(token, MISSING) if isinstance(desired, Mapping) else MISSING
        elif isinstance(other, list) and token.isdigit():
            index = int(token)
            entry = MISSING
            if isinstance(desired, list) and index < len(desired):
                entry = desired[index]
                if named(desired):
                    other = next((x for x in other if isinstance(x, Mapping)
                                  and x.get("name") == entry["name"]), MISSING)
                    desired = entry
                    continue
            other = other[index] if index < len(other) else MISSING
            desired = entry
        else:
            return MISSING
        if other is MISSING:
            return MISSING
    return other
