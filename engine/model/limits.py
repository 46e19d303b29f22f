"""Make status values fit the limits their CRD schema sets, before they are written.

Used by the controller's status writers (`controller.reporting`) and its Event
recorder. A helm or API error can be many kilobytes long; a status whose
`message` exceeds the schema's `maxLength` is refused whole by the API server
(HTTP 422), and with it the hashes and inventory the same write carried. So
every string is cut to its limit here, keeping the head (what failed) and the
tail (where helm and kubectl put the cause), joined by a marker that says how
much was cut. Pure: plain data in, plain data out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.model import schema

MARKER = " …[{cut} characters cut]… "
EVENT_MESSAGE_LEN = 1024  # kubectl describe shows a line; the API server allows more


def shorten(text: str, limit: int) -> str:
    """`text` when it fits `limit` characters, else its head and tail around a marker."""
    if len(text) <= limit:
        return text
    # The marker's length depends on the number it carries; size it for the worst case.
    room = limit - len(MARKER.format(cut=len(text)))
    if room < 2:
        return text[:limit]
    head = (room + 1) // 2
    tail = room - head
    cut = len(text) - head - tail
    return text[:head] + MARKER.format(cut=cut) + (text[-tail:] if tail else "")


def fit(value: Any, node: Mapping[str, Any]) -> Any:
    """`value` with every string cut to the `maxLength` its schema node gives it.

    Walks `properties`, `items` and `additionalProperties`; parts of the value
    the schema does not describe are returned unchanged.
    """
    if isinstance(value, str):
        limit = node.get("maxLength")
        return shorten(value, int(limit)) if isinstance(limit, int) else value
    if isinstance(value, list):
        items = node.get("items")
        return [fit(v, items) for v in value] if isinstance(items, Mapping) else value
    if isinstance(value, dict):
        props = node.get("properties") or {}
        extra = node.get("additionalProperties")
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = props.get(key, extra)
            out[key] = fit(item, sub) if isinstance(sub, Mapping) else item
        return out
    return value


_STATUS: dict[str, Mapping[str, Any]] = {}


def status_schema(kind: str) -> Mapping[str, Any]:
    """The status schema of one of our kinds (empty for other kinds), built once."""
    if not _STATUS:
        for doc in schema.crd_documents():
            version = doc["spec"]["versions"][0]
            props = version["schema"]["openAPIV3Schema"]["properties"]
            _STATUS[doc["spec"]["names"]["kind"]] = props.get("status") or {}
    return _STATUS.get(kind, {})


def fit_status(kind: str, status: Mapping[str, Any]) -> dict[str, Any]:
    """A status of `kind` whose strings all fit their schema's limits."""
    fitted: dict[str, Any] = fit(dict(status), status_schema(kind))
    return fitted
