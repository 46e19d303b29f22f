"""An asynchronous Kubernetes API client for any cluster, management or workload.

Used by the controller (workload-cluster connections, server-side apply,
inventory watches), the dev fleet's node simulator and the CLI. It speaks
plain HTTPS+JSON through aiohttp, resolves kinds to resources with discovery
(cached, refreshed on a miss so freshly installed CRDs are found), and turns
HTTP failures into the engine's typed errors in one place (`_raise_for`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from engine import errors
from engine.adapters.kubeconfig import KubeConfig

FIELD_MANAGER = "flotilla"
Obj = dict[str, Any]
ObjList = list[Obj]  # `list` is shadowed by Client.list inside the class


class ApiError(errors.RetriableError):
    """The API server answered with an error status."""

    def __init__(self, *, status: int, reason: str, message: str, retriable: bool) -> None:
        super().__init__(message, reason=reason, delay=2.0)
        self.status = status
        self.retriable = retriable


class NotFound(ApiError):
    pass


class Unreachable(errors.RetriableError):
    """No answer from the API server (refused, timed out, TLS failure)."""


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
        return base


def _raise_for(status: int, body: Any, what: str) -> None:
    message = body.get("message", "") if isinstance(body, dict) else str(body)[:500]
    reason = body.get("reason", "") if isinstance(body, dict) else ""
    text = f"{what}: {status} {reason} {message}".strip()
    if status == 404:
        raise NotFound(status=status, reason="NotFound", message=text, retriable=False)
    if status == 409:
        raise ApiError(status=status, reason=reason or "Conflict", message=text, retriable=True)
    if status in (400, 403, 405, 415, 422):
        raise ApiError(status=status, reason=reason or "Invalid", message=text, retriable=False)
    raise ApiError(status=status, reason=reason or "ServerError", message=text, retriable=True)


class Client:
    """One API server. Create it in the event loop that uses it; `close()` when done."""

    def __init__(self, config: KubeConfig, *, name: str = "", timeout: float = 15.0) -> None:
        self.config = config
        self.name = name or config.server
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 5.0))
        self._session: aiohttp.ClientSession | None = None
        self._resources: dict[tuple[str, str], Resource] = {}
        self._discovered: set[str] = set()
        self.requests: dict[str, int] = {}

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"User-Agent": "flotilla"}
            if self.config.token:
                headers["Authorization"] = f"Bearer {self.config.token}"
            connector = aiohttp.TCPConnector(ssl=self.config.ssl_context(), limit=32)
            self._session = aiohttp.ClientSession(
                self.config.server, connector=connector, headers=headers, timeout=self._timeout
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        self.requests[method] = self.requests.get(method, 0) + 1
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        try:
            async with self._http().request(
                method, path, params=params, data=data, headers=headers
            ) as resp:
                text = await resp.text()
                try:
                    payload = json.loads(text) if text else {}
                except ValueError:
                    # Not every answer is JSON: an unknown API group is a plain-text 404.
                    payload = {"message": text.strip()[:500]}
                if resp.status >= 400:
                    _raise_for(resp.status, payload, f"{method} {path} on {self.name}")
                return payload
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Unreachable(
                reason="Unreachable",
                message=f"cannot reach {self.config.server} ({self.name}): "
                        f"{exc or type(exc).__name__}"
            ) from exc

    # -- discovery -------------------------------------------------------------------------

    async def _discover(self, api_version: str) -> None:
        group, _, version = api_version.rpartition("/")
        path = f"/apis/{api_version}" if group else f"/api/{version}"
        doc = await self.request("GET", path)
        for res in doc.get("resources", []):
            if "/" in res["name"]:
                continue  # subresources such as deployments/status
            self._resources[(api_version, res["kind"])] = Resource(
                group=group, version=version, plural=res["name"], kind=res["kind"],
                namespaced=bool(res.get("namespaced")),
            )
        self._discovered.add(api_version)

    async def resource(self, api_version: str, kind: str) -> Resource:
        key = (api_version, kind)
        if key not in self._resources:
            with contextlib.suppress(NotFound):
                await self._discover(api_version)
        if key not in self._resources:
            raise NotFound(status=404, reason="UnknownKind", retriable=True,
                           message=f"{self.name} does not serve {kind} in {api_version}")
        return self._resources[key]

    # -- objects ---------------------------------------------------------------------------

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> Obj | None:
        res = await self.resource(api_version, kind)
        try:
            obj: Obj = await self.request("GET", res.path(namespace, name))
        except NotFound:
            return None
        return obj

    async def list(
        self, api_version: str, kind: str, *, namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[Obj]:
        items, _ = await self.list_versioned(api_version, kind, namespace=namespace,
                                             label_selector=label_selector)
        return items

    async def list_versioned(
        self, api_version: str, kind: str, *, namespace: str | None = None,
        label_selector: str | None = None,
    ) -> tuple[ObjList, str]:
        """The items and the list's resourceVersion, to start a watch from."""
        res = await self.resource(api_version, kind)
        params = {"labelSelector": label_selector} if label_selector else None
        doc = await self.request("GET", res.path(namespace), params=params)
        items: ObjList = doc.get("items", [])
        for item in items:  # list items lack apiVersion/kind; callers want whole objects
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items, str(doc.get("metadata", {}).get("resourceVersion", ""))

    async def apply(
        self, obj: Mapping[str, Any], *, field_manager: str = FIELD_MANAGER, force: bool = True,
        dry_run: bool = False, subresource: str | None = None,
    ) -> Obj:
        """Server-side apply one object (optionally its status subresource)."""
        res = await self.resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        path = res.path(meta.get("namespace"), meta["name"])
        if subresource:
            path += f"/{subresource}"
        params = {"fieldManager": field_manager, "force": "true" if force else "false"}
        if dry_run:
            params["dryRun"] = "All"
        result: Obj = await self.request(
            "PATCH", path, params=params, body=obj, content_type="application/apply-patch+yaml"
        )
        return result

    async def patch(
        self, api_version: str, kind: str, namespace: str | None, name: str, patch: Any, *,
        subresource: str | None = None, merge: bool = True,
    ) -> Obj:
        res = await self.resource(api_version, kind)
        path = res.path(namespace, name) + (f"/{subresource}" if subresource else "")
        ctype = "application/merge-patch+json" if merge else "application/json-patch+json"
        result: Obj = await self.request("PATCH", path, body=patch, content_type=ctype)
        return result

    async def create(self, obj: Mapping[str, Any], *, field_manager: str | None = None) -> Obj:
        res = await self.resource(obj["apiVersion"], obj["kind"])
        params = {"fieldManager": field_manager} if field_manager else None
        result: Obj = await self.request(
            "POST", res.path(obj["metadata"].get("namespace")), body=obj, params=params)
        return result

    async def delete(
        self, api_version: str, kind: str, namespace: str | None, name: str, *,
        grace_seconds: int | None = None, propagation: str = "Background",
    ) -> bool:
        """Delete an object; False when it was already gone."""
        res = await self.resource(api_version, kind)
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1",
                     "propagationPolicy": propagation}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        try:
            await self.request("DELETE", res.path(namespace, name), body=body)
        except NotFound:
            return False
        return True

    async def watch(
        self, api_version: str, kind: str, *, namespace: str | None = None,
        label_selector: str | None = None, resource_version: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, Obj]]:
        """Yield (type, object) events until the server closes the stream."""
        res = await self.resource(api_version, kind)
        params = {"watch": "true", "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(timeout_seconds)}
        if label_selector:
            params["labelSelector"] = label_selector
        if resource_version:
            params["resourceVersion"] = resource_version
        self.requests["WATCH"] = self.requests.get("WATCH", 0) + 1
        timeout = aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30)
        try:
            async with self._http().get(res.path(namespace), params=params,
                                        timeout=timeout) as resp:
                if resp.status >= 400:
                    _raise_for(resp.status, await resp.json(content_type=None),
                               f"WATCH {res.plural} on {self.name}")
                async for line in resp.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object", {})
                        _raise_for(int(status.get("code", 500)), status,
                                   f"WATCH {res.plural} on {self.name}")
                    yield event["type"], event["object"]
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Unreachable(
                reason="Unreachable", message=f"{self.name}: watch {res.plural}: {exc}"
            ) from exc

    async def version(self) -> str:
        doc = await self.request("GET", "/version")
        return str(doc.get("gitVersion", ""))
