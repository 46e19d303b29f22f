"""An asynchronous Kubernetes API client for any cluster, management or workload.

Used by the controller (workload-cluster connections, server-side apply,
inventory watches), the dev fleet's node simulator and the CLI. It speaks
plain HTTPS+JSON through aiohttp, resolves kinds to resources with discovery
(cached, refreshed on a miss so freshly installed CRDs are found), and turns
HTTP failures into the engine's typed errors in one place (`_raise_for`).

We keep this thin layer rather than the official client because the controller
is asyncio end to end and talks to up to a thousand clusters; the official
client is synchronous. Kubeconfig reading and exec plugins do come from the
official client (`kubeconfig`, `credentials`). Every request takes the current
credential from its source (exec plugins refresh before expiry), retries once
after a 401 with a renewed one, waits out 429 (and 503 with Retry-After) up to
a bound, and list calls page through `limit`/`continue`. A `limiter` shared by
many clients (the controller's `--max-workload-requests`) bounds how many of
their requests are in flight at once; watches, which stay open, take no slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from engine import errors
from engine.adapters import credentials, kubehttp
from engine.adapters.kubeconfig import KubeConfig

FIELD_MANAGER = "flotilla"
PAGE_SIZE = 500  # items per list page, as client-go's pager
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


def _unauthorized(what: str, used: credentials.Credential | None) -> ApiError:
    expiry = credentials.jwt_expiry(used.token if used else None)
    if expiry is not None and expiry <= datetime.datetime.now(datetime.UTC):
        return ApiError(status=401, reason="CredentialsExpired", retriable=True,
                        message=f"{what}: 401 Unauthorized: the bearer token expired at "
                                f"{expiry.isoformat()}")
    return ApiError(status=401, reason="Unauthorized", retriable=True,
                    message=f"{what}: 401 Unauthorized: the API server rejected the "
                            "credentials (token invalid or revoked, or a client certificate "
                            "it does not trust)")


def _raise_for(status: int, body: Any, what: str,
               used: credentials.Credential | None = None) -> None:
    message = body.get("message", "") if isinstance(body, dict) else str(body)[:500]
    reason = body.get("reason", "") if isinstance(body, dict) else ""
    text = f"{what}: {status} {reason} {message}".strip()
    if status == 401:
        raise _unauthorized(what, used)
    if status == 429:
        raise ApiError(status=status, reason="TooManyRequests", message=text, retriable=True)
    if status == 404:
        raise NotFound(status=status, reason="NotFound", message=text, retriable=False)
    if status == 409:
        raise ApiError(status=status, reason=reason or "Conflict", message=text, retriable=True)
    if status in (400, 403, 405, 415, 422):
        raise ApiError(status=status, reason=reason or "Invalid", message=text, retriable=False)
    raise ApiError(status=status, reason=reason or "ServerError", message=text, retriable=True)


class Client:
    """One API server. Create it in the event loop that uses it; `close()` when done.

    `scratch` is a private directory for the moments TLS files must exist
    (see `KubeConfig.ssl_context`); without one they go to a fresh temp dir.
    `limiter`, when given, is held by each request while it is on the wire.
    """

    def __init__(self, config: KubeConfig, *, name: str = "", timeout: float = 15.0,
                 scratch: Path | None = None, limiter: asyncio.Semaphore | None = None,
                 ) -> None:
        self.config = config
        self.name = name or config.server
        self.auth = credentials.for_config(config)
        self.scratch = scratch
        self.limiter = limiter
        self.observe: Callable[[str], None] | None = None  # told each request's verb
        self.page_size = PAGE_SIZE
        self.throttled = 0  # answers waited out (429, 503 with Retry-After)
        self._proxy = config.proxy_url or kubehttp.env_proxy(config.server)
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 5.0))
        self._session: aiohttp.ClientSession | None = None
        self._session_cert: str | None = None
        self._retired: list[aiohttp.ClientSession] = []
        self._resources: dict[tuple[str, str], Resource] = {}
        self._discovered: set[str] = set()
        self.requests: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"Client({self.name!r}, {self.config.server!r})"

    async def credential(self) -> credentials.Credential:
        """The credential requests carry now (e.g. for a login handler); never log it."""
        return await self.auth.get()

    async def _connect(self) -> tuple[aiohttp.ClientSession, credentials.Credential]:
        """A session for the current credential: a new client certificate needs a new one."""
        cred = await self.auth.get()
        if self._session is None or self._session.closed or cred.cert_id != self._session_cert:
            if self._session is not None and not self._session.closed:
                # Requests (watches) still running on the old session finish there; it is
                # closed at the next rotation or at close().
                for old in self._retired:
                    await old.close()
                self._retired = [self._session]
            ssl_ctx = self.config.ssl_context(self.scratch, cert=cred.cert_data,
                                              key=cred.key_data)
            connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=32)
            self._session = aiohttp.ClientSession(
                self.config.server, connector=connector, headers={"User-Agent": "flotilla"},
                timeout=self._timeout, proxy=self._proxy)
            self._session_cert = cred.cert_id
        return self._session, cred

    @staticmethod
    def _auth(cred: credentials.Credential) -> dict[str, str]:
        return {"Authorization": f"Bearer {cred.token}"} if cred.token else {}

    def _unreachable(self, exc: BaseException, what: str) -> Unreachable:
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            hint = "tls-server-name and " if self.config.tls_server_name else ""
            return Unreachable(
                reason="TLSVerifyFailed",
                message=f"{what} on {self.name}: TLS verification of {self.config.server} "
                        f"failed ({exc.certificate_error}): check the kubeconfig's {hint}"
                        "certificate-authority-data")
        if isinstance(exc, aiohttp.ClientSSLError):
            return Unreachable(reason="TLSHandshakeFailed",
                               message=f"{what} on {self.name}: TLS handshake with "
                                       f"{self.config.server} "
                                       f"failed: {exc}")
        return Unreachable(reason="Unreachable",
                           message=f"cannot reach {self.config.server} ({self.name}): "
                                   f"{exc or type(exc).__name__}")

    async def close(self) -> None:
        for session in [*self._retired, self._session]:
            if session is not None:
                await session.close()
        self._session, self._retired = None, []

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
        if self.observe is not None:
            self.observe(method)
        if body is None:
            data = None
        elif content_type == "application/apply-patch+yaml":
            data = kubehttp.yaml_safe_json(body)
        else:
            data = json.dumps(body)
        extra = {"Content-Type": content_type} if data is not None else {}
        renewed, throttled = False, 0
        while True:
            session, cred = await self._connect()
            try:
                async with self._slot(), session.request(
                    method, path, params=params, data=data,
                    headers={**extra, **self._auth(cred)},
                    server_hostname=self.config.tls_server_name,
                ) as resp:
                    status, headers, text = resp.status, resp.headers, await resp.text()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise self._unreachable(exc, f"{method} {path}") from exc
            if status == 401 and not renewed:
                renewed = True  # once: the credential may have expired or been rotated
                if await self.auth.renew(cred):
                    continue
            wait = kubehttp.retry_after(status, headers, throttled)
            if wait is not None:
                throttled += 1
                self.throttled += 1
                await asyncio.sleep(wait)
                continue
            try:
                payload = json.loads(text) if text else {}
            except ValueError:
                # Not every answer is JSON: an unknown API group is a plain-text 404.
                payload = {"message": text.strip()[:500]}
            if status >= 400:
                _raise_for(status, payload, f"{method} {path} on {self.name}", cred)
            return payload

    def _slot(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self.limiter if self.limiter is not None else contextlib.nullcontext()

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
        label_selector: str | None = None, field_selector: str | None = None,
    ) -> list[Obj]:
        items, _ = await self.list_versioned(api_version, kind, namespace=namespace,
                                             label_selector=label_selector,
                                             field_selector=field_selector)
        return items

    async def list_versioned(
        self, api_version: str, kind: str, *, namespace: str | None = None,
        label_selector: str | None = None, field_selector: str | None = None,
    ) -> tuple[ObjList, str]:
        """The items and the list's resourceVersion, to start a watch from."""
        res = await self.resource(api_version, kind)
        params = _selectors(label_selector, field_selector)
        items: ObjList = []
        token = ""
        while True:
            page = {**params, "limit": str(self.page_size)}
            if token:
                page["continue"] = token
            try:
                doc = await self.request("GET", res.path(namespace), params=page)
            except ApiError as exc:
                if exc.status != 410 or not token:
                    raise
                # The continue token expired (compaction): list again, in one piece.
                doc = await self.request("GET", res.path(namespace), params=params or None)
                items = []
            items.extend(doc.get("items") or [])
            token = str((doc.get("metadata") or {}).get("continue") or "")
            if not token:
                break
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
        label_selector: str | None = None, field_selector: str | None = None,
        resource_version: str | None = None, timeout_seconds: int = 300,
        quiet_for: float | None = None,
    ) -> AsyncIterator[tuple[str, Obj]]:
        """Yield (type, object) events until the server closes the stream.

        `quiet_for`: seconds without a byte from the server (no event, no bookmark)
        after which the stream counts as broken (Unreachable); default the watch's
        own timeout plus 30 s.
        """
        res = await self.resource(api_version, kind)
        params = {"watch": "true", "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(timeout_seconds),
                  **_selectors(label_selector, field_selector)}
        if resource_version:
            params["resourceVersion"] = resource_version
        self.requests["WATCH"] = self.requests.get("WATCH", 0) + 1
        if self.observe is not None:
            self.observe("WATCH")
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeout.sock_connect,
                                        sock_read=quiet_for or timeout_seconds + 30)
        session, cred = await self._connect()
        try:
            async with session.get(res.path(namespace), params=params, timeout=timeout,
                                   headers=self._auth(cred),
                                   server_hostname=self.config.tls_server_name) as resp:
                if resp.status == 401:
                    await self.auth.renew(cred)  # the next attempt carries a fresh one
                if resp.status >= 400:
                    _raise_for(resp.status, await resp.json(content_type=None),
                               f"WATCH {res.plural} on {self.name}", cred)
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
            raise self._unreachable(exc, f"watch {res.plural}") from exc

    async def version(self) -> str:
        doc = await self.request("GET", "/version")
        return str(doc.get("gitVersion", ""))


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params = {"labelSelector": label_selector} if label_selector else {}
    if field_selector:
        params["fieldSelector"] = field_selector
    return params
