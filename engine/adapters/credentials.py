"""The credential an API client sends, kept current: static, a token file, an exec plugin.

Used by `engine.adapters.kube.Client`, which asks `get()` before every request
and `renew(used)` once after a 401. Three sources:

* `Source`: what the kubeconfig holds inline (token, client certificate).
* `TokenFile`: `tokenFile` and the in-cluster ServiceAccount token, re-read when
  the file changes (projected tokens rotate under a running pod).
* `ExecPlugin`: a client.authentication.k8s.io/v1 or v1beta1 exec plugin, run by
  the official client's `ExecProvider` in a worker thread (it blocks), with what
  that runner lacks added here: `installHint` when the command is missing, plugin
  output redacted before it reaches an error message, a bound on how long a
  plugin may take, refresh shortly before `expirationTimestamp` and once on a
  401, and client certificates as well as tokens. One run at a time per
  cluster, however many requests wait for it.

Errors are the engine's typed errors with reasons the WorkloadCluster's
conditions show: ExecPluginNotFound, ExecPluginFailed, ExecPluginBadOutput.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes.config import config_exception
from kubernetes.config import exec_provider as _exec_provider
from kubernetes.config import kube_config as _kube_config

from engine import errors
from engine.adapters import redaction
from engine.adapters.kubeconfig import ExecConfig, KubeConfig

exec_provider: Any = _exec_provider  # the client ships no type hints
kube_config: Any = _kube_config
PLUGIN_TIMEOUT = 60.0
_SECRET_ENV = re.compile(r"(?i)token|secret|passw|key|credential")


class _NoTerminal:
    """`sys` as the client's exec runner sees it: everything but a terminal on stdout.

    `ExecProvider.run` calls a plugin interactive when our stdout is a terminal and
    then hands it our stdin and stderr: its output would reach the controller's log
    unredacted and a login prompt would wait forever. A controller is never
    interactive, whatever its stdout is.
    """

    stdout = None

    def __getattr__(self, name: str) -> Any:
        return getattr(sys, name)


exec_provider.sys = _NoTerminal()


@dataclass(frozen=True)
class Credential:
    """What one request authenticates with; no secret shows in the repr."""

    token: str | None = field(default=None, repr=False)
    cert_data: bytes | None = field(default=None, repr=False)
    key_data: bytes | None = field(default=None, repr=False)
    expires: datetime.datetime | None = None

    @property
    def cert_id(self) -> str | None:
        """Tells client certificates apart without holding them (a session per certificate)."""
        if not (self.cert_data and self.key_data):
            return None
        return hashlib.sha256(self.cert_data + b"\0" + self.key_data).hexdigest()[:16]


def jwt_expiry(token: str | None) -> datetime.datetime | None:
    """The `exp` claim of a JWT bearer token (unverified), None when it is not one."""
    parts = (token or "").split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return datetime.datetime.fromtimestamp(float(claims["exp"]), tz=datetime.UTC)
    except (ValueError, KeyError, TypeError):
        return None


def credential_from_status(status: Any) -> Credential:
    """An ExecCredential's `status` (v1 and v1beta1 share it) as a Credential."""
    if not isinstance(status, dict):
        raise ValueError("status is not an object")
    token = status.get("token")
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    if not token and not (cert and key):
        raise ValueError("status has neither token nor clientCertificateData+clientKeyData")
    expires = None
    if status.get("expirationTimestamp"):
        try:
            expires = datetime.datetime.fromisoformat(str(status["expirationTimestamp"]))
        except ValueError:
            raise ValueError("status.expirationTimestamp is not an RFC 3339 time") from None
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=datetime.UTC)
    return Credential(token=str(token) if token else None,
                      cert_data=str(cert).encode() if cert and key else None,
                      key_data=str(key).encode() if cert and key else None, expires=expires)


def refresh_margin(lifetime: float) -> float:
    """Seconds before expiry to fetch anew: a quarter of the lifetime, 1 s to 30 s."""
    return min(30.0, max(1.0, lifetime / 4))


class Source:
    """The kubeconfig's own token or client certificate; nothing to refresh."""

    def __init__(self, credential: Credential) -> None:
        self._cred = credential

    async def get(self) -> Credential:
        return self._cred

    async def renew(self, used: Credential) -> bool:
        """After a 401 with `used`: True when a different credential is worth a retry."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class TokenFile(Source):
    """A bearer token read from a file, re-read when the file changes (checked each second)."""

    def __init__(self, path: str, base: Credential) -> None:
        super().__init__(base)
        self.path = path
        self._key: tuple[int, int, int] | None = None
        self._checked = -1.0
        self._read()

    def _read(self) -> bool:
        self._checked = time.monotonic()
        try:
            st = os.stat(self.path)
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            if key == self._key:
                return False
            token = open(self.path).read().strip()  # noqa: SIM115 - a small file
        except OSError as exc:
            if self._key is not None:
                return False  # keep the last token through a rotation's gap
            raise errors.RetriableError(f"cannot read token file {self.path} ({exc.strerror})",
                                        reason="InvalidKubeconfig", delay=30) from None
        if not token:
            raise errors.RetriableError(f"token file {self.path} is empty",
                                        reason="InvalidKubeconfig", delay=30)
        self._key = key
        self._cred = Credential(token=token, cert_data=self._cred.cert_data,
                                key_data=self._cred.key_data)
        return True

    async def get(self) -> Credential:
        if time.monotonic() - self._checked >= 1.0:
            self._read()
        return self._cred

    async def renew(self, used: Credential) -> bool:
        self._read()
        return self._cred.token != used.token

    def __repr__(self) -> str:
        return f"TokenFile({self.path!r})"


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="exec-plugin")
    return _POOL


class ExecPlugin(Source):
    """An exec credential plugin, run when the last credential nears its expiry or was refused."""

    def __init__(self, config: KubeConfig, *, timeout: float = PLUGIN_TIMEOUT) -> None:
        super().__init__(Credential())
        assert config.exec is not None
        self.exec: ExecConfig = config.exec
        self.timeout = timeout
        self.runs = 0
        self.last_run_seconds = 0.0
        self._cluster = _cluster_info(config)
        self._have = False
        self._margin = 0.0
        self._lock: asyncio.Lock | None = None

    def _fresh(self) -> bool:
        if not self._have:
            return False
        expires = self._cred.expires
        if expires is None:
            return True  # valid until the server says otherwise
        left = (expires - datetime.datetime.now(datetime.UTC)).total_seconds()
        return left > self._margin

    async def get(self) -> Credential:
        if self._fresh():
            return self._cred
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if not self._fresh():
                await self._run()
            return self._cred

    async def renew(self, used: Credential) -> bool:
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._cred is used or not self._have:
                await self._run()
        return True

    async def _run(self) -> None:
        spec = self.exec.spec
        try:
            provider = exec_provider.ExecProvider(
                kube_config.ConfigNode("exec", spec), self.exec.base or None,
                kube_config.ConfigNode("cluster", self._cluster))
        except (config_exception.ConfigException, KeyError, TypeError) as exc:
            raise errors.NonRetriableError(f"users[].user.exec: {type(exc).__name__}",
                                           reason="InvalidKubeconfig") from None
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        self.runs += 1
        try:
            status = await asyncio.wait_for(loop.run_in_executor(_pool(), provider.run),
                                            self.timeout)
            cred = credential_from_status(status)
        except FileNotFoundError:
            hint = self.exec.install_hint
            raise errors.RetriableError(
                f"exec plugin {self.exec.command!r} was not found"
                + (f": {self._redact(hint)}" if hint else
                   " (install it in the controller's image or give an absolute path)"),
                reason="ExecPluginNotFound", delay=60) from None
        except PermissionError:
            raise errors.RetriableError(f"exec plugin {self.exec.command!r} is not executable",
                                        reason="ExecPluginNotFound", delay=60) from None
        except TimeoutError:
            raise errors.RetriableError(
                f"exec plugin {self.exec.command!r} did not finish within {self.timeout:.0f}s",
                reason="ExecPluginFailed", delay=30) from None
        except config_exception.ConfigException as exc:
            text = self._redact(str(exc).removeprefix("exec: "))
            if text.startswith("process returned"):
                raise errors.RetriableError(
                    f"exec plugin {self.exec.command!r} failed: "
                    f"{text.replace('process returned', 'exit status', 1)}",
                    reason="ExecPluginFailed", delay=30) from None
            raise errors.RetriableError(f"exec plugin {self.exec.command!r} printed no valid "
                                        f"ExecCredential: {text}",
                                        reason="ExecPluginBadOutput", delay=30) from None
        except ValueError as exc:
            raise errors.RetriableError(f"exec plugin {self.exec.command!r} printed no valid "
                                        f"ExecCredential: {self._redact(str(exc))}",
                                        reason="ExecPluginBadOutput", delay=30) from None
        except OSError as exc:
            raise errors.RetriableError(f"exec plugin {self.exec.command!r} could not run "
                                        f"({exc.strerror})", reason="ExecPluginFailed",
                                        delay=30) from None
        now = datetime.datetime.now(datetime.UTC)
        if cred.expires is not None and cred.expires <= now:
            raise errors.RetriableError(
                f"exec plugin {self.exec.command!r} returned a credential that expired at "
                f"{cred.expires.isoformat()}", reason="ExecPluginBadOutput", delay=30)
        lifetime = (cred.expires - now).total_seconds() if cred.expires else 0.0
        self._margin = refresh_margin(lifetime) if cred.expires else 0.0
        self._cred, self._have = cred, True
        self.last_run_seconds = time.monotonic() - started

    def _redact(self, text: str) -> str:
        known = [str(e.get("value", "")) for e in self.exec.spec.get("env") or []
                 if _SECRET_ENV.search(str(e.get("name", "")))]
        if self._cred.token:
            known.append(self._cred.token)
        return redaction.redact(text, known)

    def __repr__(self) -> str:
        return f"ExecPlugin({self.exec.command!r})"


def _cluster_info(config: KubeConfig) -> dict[str, Any]:
    """spec.cluster for provideClusterInfo, as client-go builds it (CA inline)."""
    info: dict[str, Any] = {"server": config.server}
    if config.ca_data:
        info["certificate-authority-data"] = base64.b64encode(config.ca_data).decode()
    if config.tls_server_name:
        info["tls-server-name"] = config.tls_server_name
    if config.insecure:
        info["insecure-skip-tls-verify"] = True
    if config.proxy_url:
        info["proxy-url"] = config.proxy_url
    extensions = config.exec.cluster.get("extensions") if config.exec else None
    if extensions:
        info["extensions"] = extensions  # ExecProvider moves the exec extension to `config`
    return info


def for_config(config: KubeConfig) -> Source:
    """The credential source a kubeconfig describes: a token wins over tokenFile and exec."""
    static = Credential(token=config.token, cert_data=config.cert_data, key_data=config.key_data)
    if config.token:
        return Source(static)
    if config.token_file:
        return TokenFile(config.token_file, static)
    if config.exec is not None:
        return ExecPlugin(config)
    return Source(static)
