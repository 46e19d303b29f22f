"""Kubeconfig parsing on plain data: what each field becomes, what is refused, what never shows."""

from __future__ import annotations

import base64
import os
import ssl
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import errors
from engine.adapters import credentials, kubeconfig
from engine.devfleet import certs

TOKEN = "tok-3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e"
PAIR = certs.make_client(certs.make_ca(), "someone", None)
CA = certs.make_ca()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def doc(user: dict[str, Any] | None = None, cluster: dict[str, Any] | None = None,
        **top: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443/",
                                               "certificate-authority-data": b64(CA.cert),
                                               **(cluster or {})}}],
        "users": [{"name": "u", "user": user if user is not None else {"token": TOKEN}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u",
                                                 "namespace": "apps"}}],
        "current-context": "ctx", **top,
    }


def parse(d: dict[str, Any], base: Path | None = None) -> kubeconfig.KubeConfig:
    return kubeconfig.parse(yaml.safe_dump(d), base=base)


def refused(d: dict[str, Any] | str) -> errors.NonRetriableError:
    with pytest.raises(errors.NonRetriableError) as info:
        kubeconfig.parse(d if isinstance(d, str) else yaml.safe_dump(d))
    assert info.value.reason == "InvalidKubeconfig"
    return info.value


class TestFields:
    """Each supported field lands where the client reads it."""

    def test_inline_token_and_ca(self) -> None:
        config = parse(doc())
        assert config.server == "https://10.0.0.1:6443"
        assert config.token == TOKEN and config.token_file is None
        assert config.ca_data == CA.cert and not config.insecure

    def test_token_file_relative_to_the_kubeconfig(self, tmp_path: Path) -> None:
        (tmp_path / "token").write_text(TOKEN + "\n")
        config = parse(doc({"tokenFile": "token"}), base=tmp_path)
        assert config.token is None  # read per request, so a rotated token is seen
        assert config.token_file == str(tmp_path / "token")

    def test_inline_token_wins_over_token_file(self, tmp_path: Path) -> None:
        (tmp_path / "token").write_text("other")
        config = parse(doc({"token": TOKEN, "tokenFile": "token"}), base=tmp_path)
        assert config.token == TOKEN and config.token_file is None

    def test_missing_token_file(self, tmp_path: Path) -> None:
        error = refused(doc({"tokenFile": str(tmp_path / "absent")}))
        assert "tokenFile" in str(error) and "absent" in str(error)

    def test_client_certificate_inline_and_as_files(self, tmp_path: Path) -> None:
        inline = parse(doc({"client-certificate-data": b64(PAIR.cert),
                            "client-key-data": b64(PAIR.key)}))
        (tmp_path / "c.crt").write_bytes(PAIR.cert)
        (tmp_path / "c.key").write_bytes(PAIR.key)
        (tmp_path / "ca.crt").write_bytes(CA.cert)
        d = doc({"client-certificate": "c.crt", "client-key": "c.key"},
                {"certificate-authority": "ca.crt"})
        del d["clusters"][0]["cluster"]["certificate-authority-data"]
        files = parse(d, base=tmp_path)
        for config in (inline, files):
            assert config.cert_data == PAIR.cert and config.key_data == PAIR.key
        assert files.ca_data == CA.cert
        assert files.minified["users"][0]["user"]["client-key"] == str(tmp_path / "c.key")

    def test_tls_server_name_proxy_and_insecure(self) -> None:
        config = parse(doc(cluster={"tls-server-name": "api.internal",
                                    "proxy-url": "http://proxy.corp:3128",
                                    "insecure-skip-tls-verify": True}))
        assert config.tls_server_name == "api.internal"
        assert config.proxy_url == "http://proxy.corp:3128"
        assert config.insecure

    def test_a_named_ca_is_the_only_one_trusted(self) -> None:
        """As client-go: certificate-authority-data replaces the system's roots."""
        system = len(ssl.create_default_context().get_ca_certs())
        assert system > 0, "control: this machine has system roots to leave out"
        named = parse(doc()).ssl_context().get_ca_certs()
        assert len(named) == 1
        unnamed = doc()
        del unnamed["clusters"][0]["cluster"]["certificate-authority-data"]
        assert len(parse(unnamed).ssl_context().get_ca_certs()) == system

    def test_socks_proxy_is_refused_by_name(self) -> None:
        assert "socks5" in str(refused(doc(cluster={"proxy-url": "socks5://p:1080"})))

    def test_first_context_when_none_is_current(self) -> None:
        d = doc()
        del d["current-context"]
        assert parse(d).token == TOKEN

    def test_exec_stanza_is_kept_for_our_runner(self) -> None:
        stanza = {"apiVersion": "client.authentication.k8s.io/v1", "command": "./bin/auth",
                  "args": ["--x"], "env": [{"name": "SECRET_KEY", "value": TOKEN}],
                  "interactiveMode": "Never", "installHint": "get it"}
        config = parse(doc({"exec": stanza}), base=Path("/etc/kube"))
        assert config.exec is not None and config.token is None
        assert config.exec.command == "/etc/kube/bin/auth"  # relative to the kubeconfig
        assert config.exec.install_hint == "get it"
        assert config.minified["users"][0]["user"]["exec"]["command"] == "/etc/kube/bin/auth"

    @pytest.mark.parametrize("stanza, needle", [
        ({"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}, "apiVersion"),
        ({"apiVersion": "client.authentication.k8s.io/v1"}, "command"),
        ({"apiVersion": "client.authentication.k8s.io/v1", "command": "x",
          "interactiveMode": "Always"}, "interactiveMode"),
        ({"apiVersion": "client.authentication.k8s.io/v1", "command": "x", "env": ["A=b"]},
         "env"),
    ])
    def test_bad_exec_stanzas(self, stanza: dict[str, Any], needle: str) -> None:
        assert needle in str(refused(doc({"exec": stanza})))

    @pytest.mark.parametrize("user, needle", [
        ({"auth-provider": {"name": "oidc", "config": {"id-token": TOKEN}}}, "auth-provider"),
        ({"username": "admin", "password": TOKEN}, "basic auth"),
    ])
    def test_dropped_auth_methods(self, user: dict[str, Any], needle: str) -> None:
        error = refused(doc(user))
        assert needle in str(error) and TOKEN not in str(error)

    def test_minified_holds_the_current_context_only(self) -> None:
        d = doc()
        d["users"].append({"name": "other", "user": {"token": "another-secret-value"}})
        text = parse(d).minified_text()
        assert TOKEN in text and "another-secret-value" not in text
        assert yaml.safe_load(text)["contexts"][0]["context"]["namespace"] == "apps"


class TestNoSecretsShown:
    """Reprs and parse errors never carry key material or tokens."""

    def test_reprs(self) -> None:
        stanza = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "auth",
                  "env": [{"name": "API_TOKEN", "value": TOKEN}]}
        for user in ({"token": TOKEN, "client-certificate-data": b64(PAIR.cert),
                      "client-key-data": b64(PAIR.key)}, {"exec": stanza}):
            config = parse(doc(user, {"proxy-url": f"http://u:{TOKEN}@proxy:3128"}))
            shown = repr(config) + repr(config.exec) + repr(credentials.for_config(config))
            assert TOKEN not in shown and "PRIVATE KEY" not in shown
            assert b64(PAIR.key)[:40] not in shown and "10.0.0.1" in shown
        cred = credentials.Credential(token=TOKEN, cert_data=PAIR.cert, key_data=PAIR.key)
        assert TOKEN not in repr(cred) and "PRIVATE" not in repr(cred)

    def test_yaml_error_names_the_place_not_the_line(self) -> None:
        text = yaml.safe_dump(doc()).replace(f"token: {TOKEN}", f"token: {TOKEN}: oops")
        with pytest.raises(yaml.YAMLError) as raw:  # positive control: PyYAML quotes it
            yaml.safe_load(text)
        tail = TOKEN[-20:]  # PyYAML shows the line around the mark, cut to its width
        assert tail in str(raw.value)
        error = refused(text)
        assert tail not in str(error) and tail not in repr(error)
        line = next(i for i, ln in enumerate(text.splitlines(), 1) if TOKEN in ln)
        assert f"line {line}," in str(error) and "column" in str(error)
        # A chained cause would print PyYAML's message (and the line) in any traceback.
        assert error.__cause__ is None and error.__suppress_context__

    def test_not_a_mapping_and_empty(self) -> None:
        assert "list" in str(refused("- a\n- b\n"))
        assert "empty" in str(refused(""))

    def test_missing_pieces_are_named(self) -> None:
        d = doc()
        d["contexts"][0]["context"]["cluster"] = "nope"
        assert "nope" in str(refused(d))
        d = doc()
        del d["clusters"][0]["cluster"]["server"]
        assert "server" in str(refused(d))


class TestFiles:
    """What must touch the disk is private and short-lived."""

    def test_client_cert_files_are_private_and_gone_after_loading(self, tmp_path: Path) -> None:
        config = parse(doc({"client-certificate-data": b64(PAIR.cert),
                            "client-key-data": b64(PAIR.key)}))
        scratch = tmp_path / "conn"
        config.ssl_context(scratch)
        assert stat.S_IMODE(os.stat(scratch).st_mode) == 0o700
        assert list(scratch.iterdir()) == []

    def test_write_private_is_0600_from_the_start(self, tmp_path: Path) -> None:
        path = kubeconfig.write_private(tmp_path / "kc", "secret")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and path.read_text() == "secret"
        kubeconfig.write_private(path, "again")  # replaces
        assert path.read_text() == "again"

    def test_a_key_that_does_not_load_is_named_without_its_bytes(self) -> None:
        config = parse(doc({"client-certificate-data": b64(PAIR.cert),
                            "client-key-data": b64(b"-----BEGIN PRIVATE KEY-----\nAAAA\n")}))
        with pytest.raises(errors.NonRetriableError) as info:
            config.ssl_context()
        assert "client certificate" in str(info.value) and "AAAA" not in str(info.value)


class TestInCluster:
    """The pod's ServiceAccount: environment, CA, a token file read per request."""

    def test_loads(self, tmp_path: Path) -> None:
        (tmp_path / "token").write_text(TOKEN)
        (tmp_path / "ca.crt").write_bytes(CA.cert)
        config = kubeconfig.in_cluster({"KUBERNETES_SERVICE_HOST": "fd00::1",
                                        "KUBERNETES_SERVICE_PORT": "443"}, tmp_path)
        assert config.server == "https://[fd00::1]:443"
        assert config.token_file == str(tmp_path / "token") and config.ca_data == CA.cert

    def test_outside_a_pod(self, tmp_path: Path) -> None:
        with pytest.raises(errors.NonRetriableError, match="--kubeconfig"):
            kubeconfig.in_cluster({}, tmp_path)
        with pytest.raises(errors.NonRetriableError, match="token"):
            kubeconfig.in_cluster({"KUBERNETES_SERVICE_HOST": "h",
                                   "KUBERNETES_SERVICE_PORT": "1"}, tmp_path)
