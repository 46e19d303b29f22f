"""Kubeconfigs as real clusters hand them out, on the real fleet.

An exec credential plugin (tests/e2e/plugins/mint_token.py) mints ServiceAccount
tokens with the TokenRequest API and claims they expire in 15 s: services deploy
through it (our client and helm both run it), and keep deploying after that
expiry. Bad kubeconfigs (a failing, missing or garbage-printing plugin, an expired
or unknown token, a wrong CA, broken YAML) each get a named condition, and none
of their secrets reaches the controller's log, an Event or a status. The API
client on its own is tested in test_kube_client.py.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fleetkit import FLEET_NS, Engine, Kubectl, bins, condition, eventually

from engine import api
from engine.adapters import kubeconfig
from engine.devfleet import certs

PLUGIN = Path(__file__).resolve().parent / "plugins" / "mint_token.py"
FAKE_SECRET = "sk-fake-7Qm2xR9vL4pT8wZ1nB6cY3hK5jD0aF2e"  # what the plugin prints on failure
SA_NS, SA = "kc-auth", "deployer"
V1, V1BETA1 = kubeconfig.EXEC_VERSIONS
TARGET = "cluster-1"


def _uid() -> str:
    return uuid.uuid4().hex[:6]


def _admin_doc(engine: Engine) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(Path(engine.kubeconfig(TARGET)).read_text())
    return doc


def _with_user(engine: Engine, user: dict[str, Any], **cluster: Any) -> dict[str, Any]:
    doc = _admin_doc(engine)
    doc["users"][0]["user"] = user
    doc["clusters"][0]["cluster"].update(cluster)
    return {k: v for k, v in doc.items()}


def _exec_user(engine: Engine, log: Path, *, mode: str = "mint", version: str = V1,
               command: str = sys.executable, hint: str | None = None) -> dict[str, Any]:
    env = {"MINT_KUBECTL": str(bins() / "kubectl"), "MINT_ADMIN": engine.kubeconfig(TARGET),
           "MINT_SA": f"{SA_NS}/{SA}", "MINT_LOG": str(log), "MINT_EXPIRES": "15",
           "MINT_MODE": mode}
    stanza: dict[str, Any] = {"apiVersion": version, "command": command, "args": [str(PLUGIN)],
                              "env": [{"name": k, "value": v} for k, v in env.items()],
                              "provideClusterInfo": True, "interactiveMode": "Never"}
    if hint:
        stanza["installHint"] = hint
    return {"exec": stanza}


def _register(mgmt: Kubectl, name: str, text: str, labels: dict[str, str] | None = None) -> None:
    """Secret + WorkloadCluster as `flotilla register` writes them, minus its own checks."""
    mgmt.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": f"{name}-kubeconfig", "namespace": FLEET_NS},
         "stringData": {"kubeconfig": text}},
        {"apiVersion": api.API_VERSION, "kind": api.WORKLOAD_CLUSTER,
         "metadata": {"name": name, "namespace": FLEET_NS, "labels": labels or {}},
         "spec": {"kubeconfigSecretRef": {"name": f"{name}-kubeconfig"}}}]}))


def _unregister(mgmt: Kubectl, *names: str) -> None:
    for name in names:
        mgmt("delete", "workloadcluster", name, "-n", FLEET_NS, "--ignore-not-found",
             "--wait=false", check=False)
        mgmt("delete", "secret", f"{name}-kubeconfig", "-n", FLEET_NS, "--ignore-not-found",
             check=False)


def _ready(mgmt: Kubectl, name: str) -> dict[str, Any] | None:
    return condition(mgmt.get("workloadcluster", name, "-n", FLEET_NS), "Ready")


def _calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def deployer(engine: Engine) -> Iterator[Kubectl]:
    """A ServiceAccount bound to cluster-admin on the target cluster, for the plugin's tokens."""
    admin = engine.cluster(TARGET)
    admin("create", "namespace", SA_NS, check=False)
    admin("create", "serviceaccount", SA, "-n", SA_NS, check=False)
    admin("create", "clusterrolebinding", f"{SA_NS}-{SA}", "--clusterrole=cluster-admin",
          f"--serviceaccount={SA_NS}:{SA}", check=False)
    try:
        yield admin
    finally:
        # The namespace stays: without a controller-manager it would never finish deleting.
        admin("delete", "clusterrolebinding", f"{SA_NS}-{SA}", "--ignore-not-found", check=False)
        admin("delete", "serviceaccount", SA, "-n", SA_NS, "--ignore-not-found", check=False)


def _profile(name: str, label: str, ns: str, repo: str, value: str) -> str:
    return f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-manifests, namespace: flotilla-system}}
data:
  objects.yaml: |
    apiVersion: v1
    kind: ConfigMap
    metadata: {{name: {name}-settings, namespace: {ns}}}
    data: {{value: "{value}"}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs:
  - {{kind: ConfigMap, namespace: flotilla-system, name: {name}-manifests}}
  helmCharts:
  - {{repositoryURL: '{repo}', chartName: multi-a, chartVersion: 0.1.0, releaseName: {name},
      releaseNamespace: {ns}, values: {{value: "{value}"}}}}
"""


class TestExecPlugin:
    """A cluster whose user is an exec plugin: deploys, refreshes, survives a refused token."""

    def test_deploys_and_keeps_working_past_the_expiry(
            self, engine: Engine, mgmt: Kubectl, deployer: Kubectl, tmp_path: Path) -> None:
        name, ns, log = f"kc-exec-{_uid()}", f"kc-{_uid()}", tmp_path / "calls"
        label, private = f"t-{name}", None
        text = yaml.safe_dump(_with_user(engine, _exec_user(engine, log)))
        _register(mgmt, name, text, {label: "on"})
        try:
            eventually(lambda: (c := _ready(mgmt, name)) and c["status"] == "True" and c,
                       timeout=30, what=f"{name} connected through the plugin")
            mgmt.apply(_profile(name, label, ns, engine.repo.url, "one"))
            engine.wait_ready(name, 1, timeout=60)
            assert deployer.get("configmap", f"{name}-settings", "-n", ns)["data"] == {
                "value": "one"}
            assert deployer.get("configmap", name, "-n", ns)["data"]["value"] == "one"
            first = _calls(log)[0]
            assert first["apiVersion"] == V1 and first["server"] == engine.fleet.clusters[0].url
            assert any(c["caller"] == "helm" for c in _calls(log)), "helm ran the plugin too"

            # Past the first credential's claimed expiry (15 s), a change must still deploy.
            # Time itself is what the test waits for here.
            time.sleep(max(0.0, _epoch(first["time"]) + 16 - time.time()))
            mgmt.apply(_profile(name, label, ns, engine.repo.url, "two"))
            eventually(lambda: (deployer.get("configmap", name, "-n", ns) or {}).get(
                "data", {}).get("value") == "two", timeout=60, what="the chart upgraded")
            eventually(lambda: (deployer.get("configmap", f"{name}-settings", "-n", ns) or {})
                       .get("data") == {"value": "two"}, timeout=30, what="manifest updated")
            ours = [c for c in _calls(log) if c["caller"] != "helm"]
            assert len(ours) >= 2, ours
            # Refreshed for the expiry: within the last quarter of the lifetime, or after it.
            assert any(_epoch(c["time"]) >= _epoch(first["time"]) + 11 for c in ours[1:]), ours

            # The connection's private directory: 0700, helm's kubeconfig 0600, gone on delete.
            private = _private_dir(engine, name)
            assert stat.S_IMODE(private.stat().st_mode) == 0o700
            assert stat.S_IMODE((private / "kubeconfig").stat().st_mode) == 0o600
        finally:
            mgmt("delete", "clusterprofile", name, "--timeout=60s", check=False)
            mgmt("delete", "configmap", f"{name}-manifests", "-n", "flotilla-system",
                 check=False)
            _unregister(mgmt, name)
            deployer("delete", "namespace", ns, "--wait=false", check=False)
        assert private is not None
        eventually(lambda: not private.exists(), timeout=30,
                   what="the private directory removed with the connection")

    def test_a_refused_token_is_renewed_once(self, engine: Engine, mgmt: Kubectl,
                                             deployer: Kubectl, tmp_path: Path) -> None:
        name, log = f"kc-stale-{_uid()}", tmp_path / "calls"
        user = _exec_user(engine, log, mode="stale-first", version=V1BETA1)
        _register(mgmt, name, yaml.safe_dump(_with_user(engine, user)))
        try:
            cond = eventually(lambda: (c := _ready(mgmt, name)) and c["status"] == "True" and c,
                              timeout=30, what=f"{name} connected after a 401")
            assert cond["reason"] == "Connected"
            calls = _calls(log)
            assert len(calls) >= 2 and calls[0]["apiVersion"] == V1BETA1
        finally:
            _unregister(mgmt, name)


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def _private_dir(engine: Engine, name: str) -> Path:
    found = list((engine.workdir / "work" / "clusters").glob(f"run-*/{FLEET_NS}/{name}/*"))
    assert len(found) == 1, found
    return found[0]


def _expired_jwt(engine: Engine) -> str:
    """A ServiceAccount token the target cluster signed, an hour past its expiry."""
    key = serialization.load_pem_private_key(
        (Path(engine.fleet.dir) / "pki" / "sa.key").read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    now = int(time.time())
    issuer = f"https://{TARGET}.flotilla.local"

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    body = part({"alg": "RS256", "typ": "JWT"}) + "." + part({
        "iss": issuer, "aud": [issuer], "sub": f"system:serviceaccount:{SA_NS}:{SA}",
        "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600})
    signature = key.sign(body.encode(), padding.PKCS1v15(), hashes.SHA256())
    return body + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


class TestBadKubeconfigs:
    """Each bad input is a named condition on the WorkloadCluster; no secret leaks anywhere."""

    def test_named_conditions_and_no_secret_anywhere(
            self, engine: Engine, mgmt: Kubectl, deployer: Kubectl, tmp_path: Path) -> None:
        uid = _uid()
        admin = _admin_doc(engine)
        admin_user = admin["users"][0]["user"]
        bogus = f"flotilla-bogus-{uuid.uuid4().hex}"
        expired = _expired_jwt(engine)
        yaml_secret = f"yaml-secret-{uuid.uuid4().hex}"
        broken = yaml.safe_dump(_with_user(engine, {"token": yaml_secret})).replace(
            f"token: {yaml_secret}", f"token: {yaml_secret}: [unclosed")
        log = tmp_path / "calls"
        hint = "flotilla-no-such-auth-plugin: install it from https://example.invalid/auth"
        cases: dict[str, tuple[str, str, str]] = {  # name: (kubeconfig, reason, must say)
            "fail": (yaml.safe_dump(_with_user(engine, _exec_user(engine, log, mode="fail"))),
                     "ExecPluginFailed", "refused token [redacted]"),
            "missing": (yaml.safe_dump(_with_user(engine, _exec_user(
                engine, log, command="flotilla-no-such-auth-plugin", hint=hint))),
                "ExecPluginNotFound", "https://example.invalid/auth"),
            "garbage": (yaml.safe_dump(_with_user(engine, _exec_user(engine, log,
                                                                     mode="garbage"))),
                        "ExecPluginBadOutput", "ExecCredential"),
            "expired": (yaml.safe_dump(_with_user(engine, {"token": expired})),
                        "CredentialsExpired", "expired at"),
            "unknown": (yaml.safe_dump(_with_user(engine, {"token": bogus})),
                        "Unauthorized", "401"),
            "wrongca": (yaml.safe_dump(_with_user(engine, admin_user, **{
                "certificate-authority-data": base64.b64encode(certs.make_ca().cert).decode()})),
                "TLSVerifyFailed", "certificate verify failed"),
            "yaml": (broken, "InvalidKubeconfig", "line"),
        }
        names = {case: f"kc-{case}-{uid}" for case in cases}
        # client-go refuses a CA together with insecure-skip-tls-verify; so does helm.
        insecure_doc = _with_user(engine, admin_user, **{"insecure-skip-tls-verify": True})
        del insecure_doc["clusters"][0]["cluster"]["certificate-authority-data"]
        names["insecure"] = f"kc-insecure-{uid}"
        helmfail, label = f"kc-helmfail-{uid}", f"t-helmfail-{uid}"
        try:
            for case, (text, _, _) in cases.items():
                _register(mgmt, names[case], text)
            _register(mgmt, names["insecure"], yaml.safe_dump(insecure_doc))
            _register(mgmt, helmfail, yaml.safe_dump(_with_user(engine, _exec_user(
                engine, log, mode="fail-under-helm"))), {label: "on"})
            mgmt.apply(_profile(helmfail, label, f"kc-{uid}", engine.repo.url, "x"))

            for case, (_, reason, needle) in cases.items():
                cond = eventually(lambda n=names[case]: (c := _ready(mgmt, n)) and
                                  c["status"] == "False" and c["reason"] not in (
                                      "Pending",) and c, timeout=30, what=f"{case} condition")
                assert cond["reason"] == reason, (case, cond)
                assert needle in cond["message"], (case, cond)
            tls = eventually(lambda: condition(mgmt.get("workloadcluster", names["insecure"],
                                                        "-n", FLEET_NS), "InsecureTLS"),
                             timeout=30, what="InsecureTLS warning")
            assert tls["status"] == "True" and tls["reason"] == "InsecureSkipTLSVerify"
            assert (_ready(mgmt, names["insecure"]) or {}).get("status") == "True"

            def helm_failed() -> str | None:
                items = mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                                  f"{api.PROFILE_NAME_LABEL}={helmfail}")["items"]
                rows = [r for s in items for r in (s.get("status") or {}).get("services") or []
                        if "Failed" in str(r.get("status"))]
                return rows[0]["message"] if rows else None

            message = eventually(helm_failed, timeout=60, what="helm's failure in the summary")
            # helm ran the plugin itself and passed its stderr on: redacted on the way in.
            assert "getting credentials" in message, message
            assert "refused token [redacted]" in message and FAKE_SECRET not in message

            self._nothing_leaks(engine, mgmt, names, {
                "plugin stderr": FAKE_SECRET, "expired token": expired, "unknown token": bogus,
                "token on the broken YAML line": yaml_secret,
                "admin client key": admin_user["client-key-data"],
                "admin key PEM line": base64.b64decode(
                    admin_user["client-key-data"]).decode().splitlines()[1]})
        finally:
            # The clusters first: helm could not withdraw from the one it cannot log in to.
            _unregister(mgmt, *names.values(), helmfail)
            mgmt("delete", "clusterprofile", helmfail, "--timeout=60s", check=False)
            mgmt("delete", "configmap", f"{helmfail}-manifests", "-n", "flotilla-system",
                 check=False)
            deployer("delete", "namespace", f"kc-{uid}", "--wait=false", check=False)

    @staticmethod
    def _nothing_leaks(engine: Engine, mgmt: Kubectl, names: dict[str, str],
                       secrets: dict[str, str]) -> None:
        # Positive controls: the grep finds each secret where it legitimately lives.
        stored = "\n".join(base64.b64decode(
            mgmt.json("get", "secret", f"{n}-kubeconfig", "-n", FLEET_NS)["data"]["kubeconfig"]
        ).decode() for n in names.values())
        for line in stored.splitlines():  # the key's PEM, one decoding further in
            if "client-key-data:" in line:
                stored += "\n" + base64.b64decode(line.split(":", 1)[1].strip()).decode()
        for what, secret in secrets.items():
            if what != "plugin stderr":
                assert secret in stored, f"positive control: {what} in its Secret"
        raw = subprocess.run([sys.executable, str(PLUGIN)], capture_output=True, text=True,
                             env={**os.environ, "MINT_MODE": "fail"}, check=False)
        assert FAKE_SECRET in raw.stderr, "positive control: the plugin prints it"

        logs = "\n".join(p.read_text(errors="replace")
                         for p in sorted(engine.workdir.glob("controller-*.log")))
        events = mgmt("get", "events", "-A", "-o", "json")
        statuses = mgmt("get", "workloadclusters,clustersummaries,clusterprofiles", "-A",
                        "-o", "json")
        assert "kc-fail-" in events and "ExecPluginFailed" in statuses  # we looked at them
        for what, secret in secrets.items():
            for where, text in (("controller log", logs), ("Events", events),
                                ("statuses", statuses)):
                assert secret not in text, f"{what} leaked into the {where}"
