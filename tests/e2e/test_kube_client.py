"""The API client on its own against a real API server: pages, TLS names, rotating tokens.

No controller here: `engine.adapters.kube.Client` and `kubeconfig` against the
fleet's first workload cluster, with kubectl (as admin) to set the scene.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from fleetkit import Kubectl

from engine.adapters import kube, kubeconfig

SA_NS = "kc-client"


def _uid() -> str:
    return uuid.uuid4().hex[:6]


class TestClient:
    """The API client on its own against a real API server."""

    def test_lists_page_through_limit_and_continue(self, fleet: Any) -> None:
        deployer = Kubectl(fleet.clusters[0].kubeconfig)
        ns = f"kc-page-{_uid()}"
        deployer("create", "namespace", ns)
        try:
            for i in range(7):
                deployer("create", "configmap", f"cm-{i}", "-n", ns)

            async def listing() -> tuple[int, int]:
                client = kube.Client(kubeconfig.load(fleet.clusters[0].kubeconfig))
                client.page_size = 2
                try:
                    items = await client.list("v1", "ConfigMap", namespace=ns)
                    return len(items), client.requests["GET"]
                finally:
                    await client.close()

            count, gets = asyncio.run(listing())
            # Ours, and kube-root-ca.crt where a controller-manager publishes it.
            expected = len(deployer.json("get", "configmaps", "-n", ns)["items"])
            assert count == expected and count >= 7
            assert gets >= 1 + (count + 1) // 2  # discovery, then pages of two
        finally:
            deployer("delete", "namespace", ns, "--wait=false", check=False)

    def test_tls_server_name(self, fleet: Any, tmp_path: Path) -> None:
        doc = yaml.safe_load(Path(fleet.clusters[0].kubeconfig).read_text())

        async def version(server_name: str) -> str:
            doc["clusters"][0]["cluster"]["tls-server-name"] = server_name
            client = kube.Client(kubeconfig.parse(yaml.safe_dump(doc)))
            try:
                return await client.version()
            finally:
                await client.close()

        assert asyncio.run(version("kubernetes.default.svc")).startswith("v1.")
        with pytest.raises(kube.Unreachable) as info:
            asyncio.run(version("not-in-the-certificate.example"))
        assert info.value.reason == "TLSVerifyFailed"
        assert "not-in-the-certificate.example" in str(info.value) or "tls-server-name" in str(
            info.value)

    def test_in_cluster_token_file_rotates(self, fleet: Any, tmp_path: Path) -> None:
        """As in a pod: env, ca.crt and a token file that kubelet replaces under us."""
        deployer = Kubectl(fleet.clusters[0].kubeconfig)
        deployer("create", "namespace", SA_NS, check=False)  # kept: no namespace controller
        for account in ("first", "second"):
            deployer("create", "serviceaccount", account, "-n", SA_NS, check=False)
        folder = tmp_path / "serviceaccount"
        folder.mkdir()
        (folder / "ca.crt").write_bytes((Path(fleet.dir) / "pki" / "ca.crt").read_bytes())
        token = folder / "token"
        token.write_text(deployer("create", "token", "first", "-n", SA_NS).strip())
        host, port = fleet.clusters[0].url.removeprefix("https://").rsplit(":", 1)
        config = kubeconfig.in_cluster({"KUBERNETES_SERVICE_HOST": host,
                                        "KUBERNETES_SERVICE_PORT": port}, folder)

        async def whoami(client: kube.Client) -> str:
            review = await client.create({"apiVersion": "authentication.k8s.io/v1",
                                          "kind": "SelfSubjectReview", "metadata": {}})
            return str(review["status"]["userInfo"]["username"])

        async def scenario() -> list[str]:
            client = kube.Client(config)
            try:
                seen = [await whoami(client)]
                # kubelet swaps the file atomically; a new token for another account shows.
                fresh = folder / "token.new"
                fresh.write_text(deployer("create", "token", "second", "-n", SA_NS).strip())
                fresh.replace(token)
                await asyncio.sleep(1.1)
                seen.append(await whoami(client))
                return seen
            finally:
                await client.close()

        assert asyncio.run(scenario()) == [f"system:serviceaccount:{SA_NS}:first",
                                           f"system:serviceaccount:{SA_NS}:second"]

    def test_exec_plugin_client_certificate(self, fleet: Any, tmp_path: Path) -> None:
        """A plugin may answer with a client certificate instead of a token (as some do)."""
        admin = yaml.safe_load(Path(fleet.clusters[0].kubeconfig).read_text())
        user = admin["users"][0]["user"]
        status = {"clientCertificateData": base64.b64decode(user["client-certificate-data"])
                  .decode(), "clientKeyData": base64.b64decode(user["client-key-data"]).decode()}
        answer = tmp_path / "answer.json"
        answer.write_text(json.dumps({"apiVersion": kubeconfig.EXEC_VERSIONS[0],
                                      "kind": "ExecCredential", "status": status}))
        admin["users"][0]["user"] = {"exec": {
            "apiVersion": kubeconfig.EXEC_VERSIONS[0], "command": sys.executable,
            "args": ["-c", f"print(open({str(answer)!r}).read())"], "interactiveMode": "Never"}}

        async def whoami() -> tuple[str, int]:
            client = kube.Client(kubeconfig.parse(yaml.safe_dump(admin)), scratch=tmp_path / "p")
            try:
                review = await client.create({"apiVersion": "authentication.k8s.io/v1",
                                              "kind": "SelfSubjectReview", "metadata": {}})
                runs = client.auth.runs  # type: ignore[attr-defined]
                return str(review["status"]["userInfo"]["username"]), runs
            finally:
                await client.close()

        # /version answers anyone; a SelfSubjectReview names who the certificate made us.
        assert asyncio.run(whoami()) == ("flotilla-admin", 1)
        assert list((tmp_path / "p").iterdir()) == []  # the TLS files were removed
