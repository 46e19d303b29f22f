"""Status and Events: the one place errors become conditions and Events.

Used by every reconciler. `describe(error)` turns an engine error (or any
exception) into a (reason, message) pair; `Recorder` posts core/v1 Events
on the management cluster, de-duplicated so a retry loop does not flood
`kubectl describe`; `patch_status` writes a status only when it changed,
which keeps an idle controller from writing anything.
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from typing import Any

from engine import errors
from engine.adapters import kube
from engine.controller import store
from engine.model import limits

log = logging.getLogger("flotilla.controller")
COMPONENT = "flotilla-controller"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_precise() -> str:
    """RFC 3339 with microseconds, for timestamps that gates measure (soak, deadline)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def after(seconds: float) -> str:
    """RFC 3339 (with microseconds) of a moment `seconds` from now."""
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def describe(exc: BaseException) -> tuple[str, str, bool]:
    """(reason, message, retriable) for any error a reconcile may meet."""
    if isinstance(exc, errors.FlotillaError):
        return exc.reason, str(exc), exc.retriable
    return "InternalError", f"{type(exc).__name__}: {exc}", True


class Recorder:
    """Posts Events about management-cluster objects."""

    def __init__(self, client: kube.Client, *, repeat_after: float = 300.0) -> None:
        self.client = client
        self.repeat_after = repeat_after
        self._last: dict[tuple[str, str, str, str], float] = {}

    async def event(self, body: dict[str, Any], *, type: str, reason: str, message: str) -> None:
        meta = body.get("metadata", {})
        key = (meta.get("uid", ""), type, reason, message)
        now_mono = time.monotonic()
        if now_mono - self._last.get(key, -1e9) < self.repeat_after:
            return
        self._last[key] = now_mono
        # The log tells the same story as the Events, one line each, naming the object.
        ref = "/".join(p for p in (meta.get("namespace"), meta.get("name")) if p)
        log.log(logging.WARNING if type == "Warning" else logging.INFO, "%s: %s", reason, message,
                extra={"object": f"{body.get('kind', '')} {ref}".strip()})
        namespace = meta.get("namespace") or "default"
        stamp = now()
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta.get('name', 'x')}.{uuid.uuid4().hex[:12]}",
                         "namespace": namespace},
            "involvedObject": {
                "apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
                "name": meta.get("name"), "namespace": meta.get("namespace") or "",
                "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type, "reason": reason,
            "message": limits.shorten(message, limits.EVENT_MESSAGE_LEN),
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT, "firstTimestamp": stamp, "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.client.create(event)
        except (kube.ApiError, kube.Unreachable) as exc:  # Events are best effort
            log.debug("event not posted: %s", exc)


def status_changed(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Compare statuses ignoring condition timestamps (they only move on real transitions)."""
    return _strip(old or {}) != _strip(new)


def _strip(status: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in status.items() if k not in ("lastProbeTime",)}
    if "conditions" in out:
        out["conditions"] = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                             for c in out["conditions"]]
    if "connection" in out and isinstance(out["connection"], dict):
        out["connection"] = {k: v for k, v in out["connection"].items() if k != "lastProbeTime"}
    return out


async def patch_status(client: kube.Client, body: dict[str, Any], status: dict[str, Any],
                       *, cache: store.Store | None = None) -> bool:
    """Merge-patch `status` when it differs from what the object has; True when written.

    For objects with a single status writer (profiles, clusters). The result
    goes into `cache` so the next reconcile does not decide on a stale copy.
    """
    status = limits.fit_status(body["kind"], status)
    if not status_changed(body.get("status"), status):
        return False
    meta = body["metadata"]
    # Lists (conditions, services, inventory) are replaced whole by a merge patch.
    written = await client.patch(body["apiVersion"], body["kind"], meta.get("namespace"),
                                 meta["name"], {"status": status}, subresource="status")
    if cache is not None:
        cache.put(body["kind"], written)
    return True


async def apply_status(client: kube.Client, body: dict[str, Any], fields: dict[str, Any], *,
                       manager: str, cache: store.Store | None = None) -> bool:
    """Server-side apply the status fields one writer owns; True when written.

    ClusterSummary status has two writers (deployment and drift detection)
    working concurrently; each applies only its own fields and condition
    types under its own field manager, so neither can revert the other's
    with a stale copy. Conditions merge by type (a list-map in the schema).
    """
    fields = limits.fit_status(body["kind"], fields)
    current = body.get("status") or {}
    mine = {k: current.get(k) for k in fields}
    if "conditions" in fields:
        types_ = {c["type"] for c in fields["conditions"]}
        mine["conditions"] = [c for c in current.get("conditions") or [] if c["type"] in types_]
    if not status_changed(mine, fields):
        return False
    meta = body["metadata"]
    patch = {"apiVersion": body["apiVersion"], "kind": body["kind"],
             "metadata": {"name": meta["name"], "namespace": meta.get("namespace")},
             "status": fields}
    written = await client.apply(patch, field_manager=manager, subresource="status")
    if cache is not None:
        cache.put(body["kind"], written)
    return True
