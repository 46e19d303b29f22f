"""Parse kubeconfig files into what an HTTPS client needs.

Used by `engine.adapters.kube` (every cluster connection), the dev fleet's
node simulator and the CLI. Only the current context is read; client
certificates, bearer tokens and CA data (inline or as files) are supported,
which covers kubeconfigs written by kubeadm, kind, k3s and our dev fleet.
Exec plugins are refused with a clear message: a controller cannot run them.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine import errors


@dataclass(frozen=True)
class KubeConfig:
    """Connection facts for one API server."""

    server: str
    ca_data: bytes | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    token: str | None = None
    insecure: bool = False

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_data:
            ctx.load_verify_locations(cadata=self.ca_data.decode())
        if self.cert_data and self.key_data:
            # ssl only loads client certificates from files; keep them private and short-lived.
            with tempfile.TemporaryDirectory(prefix="flotilla-tls-") as tmp:
                cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
                cert.write_bytes(self.cert_data)
                key.write_bytes(self.key_data)
                os.chmod(key, 0o600)
                ctx.load_cert_chain(cert, key)
        return ctx


def _blob(entry: dict[str, Any], data_key: str, file_key: str, base: Path | None) -> bytes | None:
    if entry.get(data_key):
        return base64.b64decode(entry[data_key])
    if entry.get(file_key):
        path = Path(entry[file_key])
        if base is not None and not path.is_absolute():
            path = base / path
        return path.read_bytes()
    return None


def _named(items: list[dict[str, Any]], name: str, what: str) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            body = item.get(what)
            if isinstance(body, dict):
                return body
    raise errors.NonRetriableError(
        reason="InvalidKubeconfig", message=f"kubeconfig has no {what} named {name!r}"
    )


def parse(text: str, *, base: Path | None = None) -> KubeConfig:
    """Parse kubeconfig text; raise NonRetriableError(InvalidKubeconfig) when unusable."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise errors.NonRetriableError(
            reason="InvalidKubeconfig", message=f"kubeconfig is not YAML: {exc}"
        ) from exc
    if not isinstance(doc, dict):
        raise errors.NonRetriableError(reason="InvalidKubeconfig", message="kubeconfig is empty")
    try:
        context_name = doc.get("current-context") or doc["contexts"][0]["name"]
        context = _named(doc.get("contexts", []), context_name, "context")
        cluster = _named(doc.get("clusters", []), context["cluster"], "cluster")
        user = _named(doc.get("users", []), context.get("user", ""), "user") if context.get(
            "user") else {}
    except (KeyError, IndexError, TypeError) as exc:
        raise errors.NonRetriableError(
            reason="InvalidKubeconfig", message=f"kubeconfig lacks {exc}"
        ) from exc
    if "exec" in user or "auth-provider" in user:
        raise errors.NonRetriableError(
            reason="InvalidKubeconfig",
            message="kubeconfig uses an exec/auth-provider plugin; give a token or client cert",
        )
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    return KubeConfig(
        server=str(cluster["server"]).rstrip("/"),
        ca_data=_blob(cluster, "certificate-authority-data", "certificate-authority", base),
        cert_data=_blob(user, "client-certificate-data", "client-certificate", base),
        key_data=_blob(user, "client-key-data", "client-key", base),
        token=token,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )


def load(path: str | Path) -> KubeConfig:
    p = Path(path)
    return parse(p.read_text(), base=p.parent)


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
