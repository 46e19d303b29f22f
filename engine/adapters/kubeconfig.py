"""Read kubeconfigs (files, Secret contents, the in-cluster ServiceAccount) into connection facts.

Used by `engine.adapters.kube` and `connections` (every API client), the CLI
and the dev fleet. The official client's `KubeConfigLoader` picks the context
and resolves its cluster and user (its errors name keys, never values), and its
`FileOrData` reads each certificate, key or token inline or from a file. We
stop there: the loader's `load_and_set` would write inline certificates to temp
files through a module-global cache keyed by the key material and kept until
exit, and would run exec plugins itself, logging their errors unredacted. So
the `exec` stanza is taken out of the user before the loader sees it and is run
by `engine.adapters.credentials`; certificates stay in memory until an SSL
context needs them (`ssl_context`).

Supported: tokens inline or as `tokenFile` (re-read when it changes), client
certificates inline or as files, `certificate-authority(-data)`,
`tls-server-name`, `proxy-url` (http/https), `insecure-skip-tls-verify`
(allowed; the controller raises a warning condition) and exec plugins
(client.authentication.k8s.io/v1 and v1beta1). Refused with
`InvalidKubeconfig`: auth-provider plugins and username/password, which
Kubernetes itself no longer serves. No repr and no error message here
carries a secret; a YAML error names only the line and column.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import os
import shutil
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from kubernetes.config import config_exception
from kubernetes.config import kube_config as _kube_config

from engine import errors

kube_config: Any = _kube_config  # the client ships no type hints for it

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
EXEC_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")


def _invalid(message: str) -> errors.NonRetriableError:
    return errors.NonRetriableError(message, reason="InvalidKubeconfig")


@dataclass(frozen=True)
class ExecConfig:
    """An exec credential plugin: the user's `exec` stanza and what it may be told."""

    command: str
    api_version: str
    spec: dict[str, Any] = field(repr=False)        # env values may be secrets
    cluster: dict[str, Any] = field(repr=False)     # for provideClusterInfo
    base: str = ""                                  # the plugin's working directory

    @property
    def install_hint(self) -> str:
        return str(self.spec.get("installHint") or "").strip()


@dataclass(frozen=True)
class KubeConfig:
    """Connection facts for one API server; secrets never show in the repr."""

    server: str
    ca_data: bytes | None = field(default=None, repr=False)
    cert_data: bytes | None = field(default=None, repr=False)
    key_data: bytes | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    exec: ExecConfig | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    proxy_url: str | None = field(default=None, repr=False)  # may carry user:password
    # The current context alone, file paths absolute: what helm is handed.
    minified: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def minified_text(self) -> str:
        return yaml.safe_dump(self.minified, sort_keys=False)

    def ssl_context(self, scratch: Path | None = None, *, cert: bytes | None = None,
                    key: bytes | None = None) -> ssl.SSLContext:
        """TLS settings for this server; `cert`/`key` override the kubeconfig's (exec plugins).

        Python's ssl loads client certificates only from files, so they are written
        0600 into a fresh 0700 directory under `scratch` (the connection's private
        directory) and removed as soon as they are loaded.
        """
        # A kubeconfig that names its CA trusts that CA alone, as client-go does; the
        # system's roots are loaded only when it names none. They also cost ~850 KiB per
        # context against ~17 KiB for one CA: most of the controller's memory per cluster.
        try:
            if self.ca_data and not self.insecure:
                ctx = ssl.create_default_context(cadata=self.ca_data.decode(errors="replace"))
            else:
                ctx = ssl.create_default_context()
            if self.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        except (ssl.SSLError, ValueError) as exc:
            raise _invalid("certificate-authority is not a PEM certificate "
                           f"({type(exc).__name__})") from None
        cert, key = cert or self.cert_data, key or self.key_data
        if cert and key:
            _load_client_cert(ctx, cert, key, scratch)
        return ctx


def _load_client_cert(ctx: ssl.SSLContext, cert: bytes, key: bytes, scratch: Path | None) -> None:
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = Path(tempfile.mkdtemp(prefix="tls-", dir=scratch))  # mode 0700
    try:
        paths = []
        for name, data in (("tls.crt", cert), ("tls.key", key)):
            paths.append(write_private(folder / name, data))
        ctx.load_cert_chain(paths[0], paths[1])
    except (ssl.SSLError, ValueError):
        raise _invalid("client certificate and key do not load as a PEM pair") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_private(path: Path, data: str | bytes) -> Path:
    """Write `data` to a new file readable by the owner only (0600 from its creation on)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
    return path


def _yaml(text: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # PyYAML's message quotes the offending line, which may be a token: name the place.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise _invalid(f"kubeconfig is not valid YAML{where}") from None
    if not isinstance(doc, dict):
        raise _invalid("kubeconfig is empty" if doc is None
                       else f"kubeconfig is a {type(doc).__name__}, not a mapping")
    return doc


def _absolute(value: str, base: str) -> str:
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(base, value))


def _data(node: Any, file_key: str, base: str, *, b64: bool = True) -> bytes | None:
    """`<file_key>-data` (base64) or the file `<file_key>` names, via the client's FileOrData."""
    data_key = "token" if file_key == "tokenFile" else f"{file_key}-data"
    try:
        value = kube_config.FileOrData(node, file_key, data_key, file_base_path=base,
                                       base64_file_content=b64).as_data()
    except OSError as exc:
        raise _invalid(f"{file_key}: cannot read {exc.filename} ({exc.strerror})") from None
    except config_exception.ConfigException as exc:
        raise _invalid(str(exc)) from None
    if not value:
        return None
    if not b64:
        return str(value).strip().encode()
    try:
        return base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        raise _invalid(f"{data_key} is not base64") from None


def parse(text: str, *, base: Path | None = None, context: str | None = None) -> KubeConfig:
    """Parse kubeconfig text (its current context, or `context`); raise
    NonRetriableError(InvalidKubeconfig).

    Relative file paths resolve against `base` (the file's directory), else the
    working directory. `context` is kubectl's `--context`: a name that is not
    in the file is an error, never a silent fallback to the current context.
    """
    doc = copy.deepcopy(_yaml(text))
    root = str(base) if base is not None else os.getcwd()
    stanzas: dict[str, Any] = {}
    for entry in doc.get("users") or []:
        user = entry.get("user") if isinstance(entry, dict) else None
        if isinstance(user, dict) and "exec" in user:
            stanzas[str(entry.get("name"))] = user.pop("exec")  # never run by the loader
    names = [str((c or {}).get("name")) for c in doc.get("contexts") or []
             if isinstance(c, dict)]
    if context is not None and context not in names:
        raise _invalid(f"context {context!r} is not in the kubeconfig (contexts: "
                       f"{', '.join(names) or 'none'})")
    context = context or doc.get("current-context") or None
    if context is None and isinstance(doc.get("contexts"), list) and doc["contexts"]:
        context = (doc["contexts"][0] or {}).get("name")
    try:
        loader = kube_config.KubeConfigLoader(doc, active_context=context,
                                              config_base_path=root)
        # The loader keeps the resolved stanzas privately; they are plain ConfigNodes.
        cluster, user = loader._cluster, loader._user
        server = str(cluster["server"]).rstrip("/")
        user_name = loader.current_context["context"].get("user")
    except config_exception.ConfigException as exc:
        raise _invalid(str(exc)) from None
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise _invalid(f"kubeconfig has an unexpected shape ({type(exc).__name__})") from None
    user_doc: dict[str, Any] = dict(user.value) if user is not None else {}
    cluster_doc: dict[str, Any] = dict(cluster.value)
    if "auth-provider" in user_doc:
        raise _invalid("users[].user.auth-provider plugins are not supported (kubectl dropped "
                       "them in 1.26): use the provider's exec plugin instead")
    if "username" in user_doc or "password" in user_doc:
        raise _invalid("users[].user.username/password (basic auth) is not served by "
                       "Kubernetes API servers since 1.19: use a token or a certificate")
    if not server.startswith(("https://", "http://")):
        raise _invalid("clusters[].cluster.server must be an https:// URL")
    proxy = cluster_doc.get("proxy-url")
    if proxy and urlsplit(str(proxy)).scheme not in ("http", "https"):
        raise _invalid(f"clusters[].cluster.proxy-url: scheme {urlsplit(str(proxy)).scheme!r} "
                       "is not supported by the controller (http and https proxies are)")
    stanza = stanzas.get(str(user_name)) if user_name is not None else None
    token = _data(user, "tokenFile", root, b64=False) if user is not None else None
    return KubeConfig(
        server=server,
        ca_data=_data(cluster, "certificate-authority", root),
        cert_data=_data(user, "client-certificate", root) if user is not None else None,
        key_data=_data(user, "client-key", root) if user is not None else None,
        # As client-go: an inline token wins over tokenFile, which is re-read as it rotates.
        token=token.decode() if token and user_doc.get("token") else None,
        token_file=_absolute(str(user_doc["tokenFile"]), root)
        if token and not user_doc.get("token") else None,
        exec=_exec(stanza, cluster_doc, root) if stanza is not None else None,
        insecure=bool(cluster_doc.get("insecure-skip-tls-verify")),
        tls_server_name=str(cluster_doc["tls-server-name"])
        if cluster_doc.get("tls-server-name") else None,
        proxy_url=str(proxy) if proxy else None,
        minified=_minified(loader.current_context, cluster_doc, user_doc, stanza, root),
    )


def _exec(stanza: Any, cluster: dict[str, Any], base: str) -> ExecConfig:
    if not isinstance(stanza, dict) or not stanza.get("command"):
        raise _invalid("users[].user.exec.command is missing")
    version = str(stanza.get("apiVersion") or "")
    if version not in EXEC_VERSIONS:
        raise _invalid(f"users[].user.exec.apiVersion {version!r} is not one of "
                       f"{', '.join(EXEC_VERSIONS)}")
    if stanza.get("interactiveMode") == "Always":
        raise _invalid("users[].user.exec.interactiveMode Always needs a terminal; a "
                       "controller has none (use Never or IfAvailable)")
    env = stanza.get("env") or []
    if not isinstance(env, list) or not all(isinstance(e, dict) and "name" in e and "value" in e
                                            for e in env):
        raise _invalid("users[].user.exec.env must be a list of {name, value}")
    spec = dict(stanza)
    command = str(spec["command"])
    if os.sep in command:  # as kubectl: a relative path is relative to the kubeconfig
        spec["command"] = command = _absolute(command, base)
    return ExecConfig(command=command, api_version=version, spec=spec, cluster=dict(cluster),
                      base=base)


def _minified(context: dict[str, Any], cluster: dict[str, Any], user: dict[str, Any],
              stanza: dict[str, Any] | None, base: str) -> dict[str, Any]:
    """The current context as a self-contained kubeconfig: one cluster, one user, no relatives."""
    cluster, user = dict(cluster), dict(user)
    for node, key in ((cluster, "certificate-authority"), (user, "client-certificate"),
                      (user, "client-key"), (user, "tokenFile")):
        if node.get(key) and not node.get(f"{key}-data"):
            node[key] = _absolute(str(node[key]), base)
    if stanza is not None:
        user["exec"] = dict(stanza)
        if os.sep in str(stanza.get("command", "")):
            user["exec"]["command"] = _absolute(str(stanza["command"]), base)
    ctx = dict(context.get("context") or {})
    ctx.update(cluster="cluster", user="user")
    return {"apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": cluster}],
            "users": [{"name": "user", "user": user}],
            "contexts": [{"name": "current", "context": ctx}],
            "current-context": "current"}


def load(path: str | Path, *, context: str | None = None) -> KubeConfig:
    """A kubeconfig file (its current context, or `context`); its relative paths resolve
    against its own directory."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise _invalid(f"cannot read kubeconfig {p} ({exc.strerror})") from None
    return parse(text, base=p.resolve().parent, context=context)


def in_cluster(environ: Mapping[str, str] | None = None,
               folder: Path = SERVICE_ACCOUNT) -> KubeConfig:
    """The pod's ServiceAccount: KUBERNETES_SERVICE_HOST/PORT, its CA and (rotating) token."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise _invalid("not running in a pod (KUBERNETES_SERVICE_HOST/PORT are not set): "
                       "pass --kubeconfig")
    token, ca = folder / "token", folder / "ca.crt"
    for required in (token, ca):
        if not required.is_file():
            raise _invalid(f"in-cluster config: {required} does not exist (is "
                           "automountServiceAccountToken off?)")
    if ":" in host:
        host = f"[{host}]"  # IPv6
    return KubeConfig(server=f"https://{host}:{port}", ca_data=ca.read_bytes(),
                      token_file=str(token))


def render(*, name: str, server: str, ca: bytes, cert: bytes, key: bytes) -> str:
    """A self-contained kubeconfig (all data inline), as the dev fleet writes them."""
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {
            "server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": f"{name}-admin", "user": {
            "client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}],
        "current-context": name,
    }
    return yaml.safe_dump(doc, sort_keys=False)
