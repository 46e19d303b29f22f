"""Credentials: ExecCredential parsing, the exec runner's errors and refreshes, token files,
redaction, throttling and proxy decisions. Plugins here are tiny python programs run by
the official client's ExecProvider, as in production; no cluster is needed."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import errors
from engine.adapters import credentials, kubeconfig, kubehttp, redaction

SECRET = "sk-fake-7Qm2xR9vL4pT8wZ1nB6cY3hK5jD0aF2e"
V1, V1BETA1 = kubeconfig.EXEC_VERSIONS


def plugin(code: str, *, version: str = V1, command: str = sys.executable,
           env: dict[str, str] | None = None, **extra: Any) -> credentials.ExecPlugin:
    stanza = {"apiVersion": version, "command": command, "args": ["-c", code],
              "env": [{"name": k, "value": v} for k, v in (env or {}).items()], **extra}
    text = yaml.safe_dump({
        "clusters": [{"name": "c", "cluster": {"server": "https://10.1.2.3:6443"}}],
        "users": [{"name": "u", "user": {"exec": stanza}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x"})
    source = credentials.for_config(kubeconfig.parse(text))
    assert isinstance(source, credentials.ExecPlugin)
    return source


def printing(status: dict[str, Any], *, log: Path | None = None,
             expires_in: float | None = None) -> str:
    """Plugin code that answers with `status` in the apiVersion it was asked for."""
    record = f"open({str(log)!r}, 'a').write(info + '\\n')\n" if log else ""
    expiry = ("import datetime\nstatus['expirationTimestamp'] = (datetime.datetime.now("
              f"datetime.UTC) + datetime.timedelta(seconds={expires_in})).isoformat()\n"
              if expires_in is not None else "")
    return ("import json, os\ninfo = os.environ['KUBERNETES_EXEC_INFO']\n" + record +
            f"status = {status!r}\n" + expiry +
            "print(json.dumps({'apiVersion': json.loads(info)['apiVersion'], "
            "'kind': 'ExecCredential', 'status': status}))")


def failure(run: Any) -> errors.FlotillaError:
    with pytest.raises(errors.FlotillaError) as info:
        asyncio.run(run)
    return info.value


class TestExecCredential:
    """The status of v1 and v1beta1 ExecCredentials, parsed on plain data."""

    def test_token_with_expiry(self) -> None:
        cred = credentials.credential_from_status(
            {"token": SECRET, "expirationTimestamp": "2030-01-02T03:04:05Z"})
        assert cred.token == SECRET and cred.cert_data is None
        assert cred.expires == datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)

    def test_client_certificate(self) -> None:
        cred = credentials.credential_from_status(
            {"clientCertificateData": "CERT PEM", "clientKeyData": "KEY PEM"})
        assert cred.cert_data == b"CERT PEM" and cred.key_data == b"KEY PEM"
        assert cred.token is None and cred.expires is None and cred.cert_id

    @pytest.mark.parametrize("status", [
        {}, {"clientCertificateData": "only a cert"}, "a string",
        {"token": "t", "expirationTimestamp": "tomorrow"},
    ])
    def test_unusable(self, status: Any) -> None:
        with pytest.raises(ValueError):
            credentials.credential_from_status(status)

    def test_jwt_expiry(self) -> None:
        claims = base64.urlsafe_b64encode(json.dumps({"exp": 1700000000}).encode()).rstrip(b"=")
        token = f"eyJhbGciOiJub25lIn0.{claims.decode()}.sig"
        assert credentials.jwt_expiry(token) == datetime.datetime.fromtimestamp(
            1700000000, tz=datetime.UTC)
        assert credentials.jwt_expiry("opaque") is None

    def test_refresh_margin(self) -> None:
        assert credentials.refresh_margin(15) == 3.75
        assert credentials.refresh_margin(900) == 30.0
        assert credentials.refresh_margin(2) == 1.0


class TestExecRuns:
    """The official client's runner in a thread, with what it lacks added."""

    @pytest.mark.parametrize("version", [V1, V1BETA1])
    def test_token_in_both_versions_and_cluster_info(self, version: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
        class Terminal:
            def isatty(self) -> bool:
                return True

        monkeypatch.setattr(sys, "stdout", Terminal())  # as when run in a terminal
        log = tmp_path / "calls"
        source = plugin(printing({"token": SECRET}, log=log), version=version,
                        provideClusterInfo=True)
        cred = asyncio.run(source.get())
        assert cred.token == SECRET
        asked = json.loads(log.read_text())
        assert asked["apiVersion"] == version
        assert asked["spec"]["cluster"]["server"] == "https://10.1.2.3:6443"
        assert asked["spec"]["interactive"] is False  # never, even on a terminal

    def test_env_reaches_the_plugin(self) -> None:
        code = ("import os, json\nprint(json.dumps({'apiVersion': '" + V1 + "', 'kind': "
                "'ExecCredential', 'status': {'token': os.environ['GIVEN']}}))")
        assert asyncio.run(plugin(code, env={"GIVEN": "from-env"}).get()).token == "from-env"

    def test_refreshes_before_expiry_and_once_on_401(self, tmp_path: Path) -> None:
        log = tmp_path / "calls"
        source = plugin(printing({"token": "t"}, log=log, expires_in=2.5))

        async def scenario() -> list[int]:
            seen = []
            first = await source.get()
            seen.append(source.runs)
            await source.get()  # still fresh: no run
            seen.append(source.runs)
            await asyncio.sleep(1.6)  # inside the 1 s margin before expiry
            current = await source.get()
            seen.append(source.runs)
            assert await source.renew(first)  # refused, but already replaced: no run
            seen.append(source.runs)
            assert await source.renew(current)  # refused, the current one: fetch anew
            seen.append(source.runs)
            return seen

        assert asyncio.run(scenario()) == [1, 1, 2, 2, 3]
        assert len(log.read_text().splitlines()) == 3

    def test_one_run_for_many_waiting_requests(self) -> None:
        source = plugin("import time\ntime.sleep(0.3)\n" + printing({"token": "t"}))

        async def many() -> None:
            await asyncio.gather(*(source.get() for _ in range(20)))

        asyncio.run(many())
        assert source.runs == 1

    def test_failure_names_stderr_with_secrets_redacted(self) -> None:
        code = (f"import sys\nprint('refused token {SECRET} for Bearer abc.def.ghi', "
                "file=sys.stderr)\nsys.exit(3)")
        error = failure(plugin(code).get())
        assert error.reason == "ExecPluginFailed"
        assert "exit status 3" in str(error) and "refused token [redacted]" in str(error)
        assert SECRET not in str(error) and "abc.def.ghi" not in str(error)
        assert error.__cause__ is None and error.__suppress_context__

    def test_missing_command_gives_the_install_hint(self) -> None:
        error = failure(plugin("", command="flotilla-no-such-plugin",
                               installHint="install it from https://example.invalid").get())
        assert error.reason == "ExecPluginNotFound"
        assert "flotilla-no-such-plugin" in str(error) and "example.invalid" in str(error)

    @pytest.mark.parametrize("code", [
        "print('<html>hello</html>')",
        "print('{\"apiVersion\": \"client.authentication.k8s.io/v1\", \"kind\": \"x\"}')",
        printing({"nothing": "useful"}),
        printing({"token": "t", "expirationTimestamp": "2001-01-01T00:00:00Z"}),
        printing({"token": SECRET, "expirationTimestamp": "not a time"}),
    ])
    def test_bad_output(self, code: str) -> None:
        error = failure(plugin(code).get())
        assert error.reason == "ExecPluginBadOutput" and SECRET not in str(error)

    def test_timeout(self) -> None:
        source = plugin("import time\ntime.sleep(5)")
        source.timeout = 0.5
        error = failure(source.get())
        assert error.reason == "ExecPluginFailed" and "did not finish" in str(error)


class TestTokenFile:
    """A rotated token file is read again; a vanished one keeps the last token."""

    def test_rotation(self, tmp_path: Path) -> None:
        path = tmp_path / "token"
        path.write_text("first\n")
        source = credentials.TokenFile(str(path), credentials.Credential())

        async def scenario() -> list[str | None]:
            seen = [(await source.get()).token]
            path.write_text("second-and-longer")
            os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
            seen.append((await source.get()).token)  # within the second: not re-checked
            used = await source.get()
            seen.append(str(await source.renew(used)))  # a 401 re-reads at once
            seen.append((await source.get()).token)
            path.unlink()
            source._checked = -1.0
            seen.append((await source.get()).token)
            return seen

        assert asyncio.run(scenario()) == ["first", "first", "True", "second-and-longer",
                                           "second-and-longer"]


class TestRedaction:
    """Anything token-like goes; ordinary words, paths and numbers stay."""

    @pytest.mark.parametrize("text, gone", [
        (f"error: token {SECRET} rejected", SECRET),
        ("Authorization: Bearer abc123secretvalue", "abc123secretvalue"),
        ('{"access_token": "ya29.short"}', "ya29.short"),
        ("id eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl done", "eyJzdWIiOiJ4In0"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "MIIEow"),
        ("k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_QWN0aW9uPUdldENhbGxlcklk", "aHR0cHM6"),
        ("client-key-data: LS0tLS1CRUdJTg==", "LS0tLS1CRUdJTg=="),
    ])
    def test_removes(self, text: str, gone: str) -> None:
        assert gone not in redaction.redact(text) and redaction.MARK in redaction.redact(text)

    def test_keeps(self) -> None:
        text = ("exec plugin /opt/bin/aws-iam-authenticator-for-the-cluster-v2 exited 1: "
                "the token expired at line 12; region us-west-2")
        assert redaction.redact(text) == text

    def test_known_secrets(self) -> None:
        assert redaction.redact("value short1 here", ["short1"]) == "value [redacted] here"


class TestThrottleAndProxy:
    """Retry-After is honoured within bounds; proxies follow Go's rules."""

    @pytest.mark.parametrize("status, headers, attempt, wait", [
        (429, {"Retry-After": "2"}, 0, 2.0),
        (429, {}, 0, 1.0),
        (429, {"Retry-After": "3600"}, 0, kubehttp.MAX_RETRY_AFTER),
        (429, {"Retry-After": "0"}, 0, 0.5),
        (503, {"Retry-After": "1"}, 1, 1.0),
        (503, {}, 0, None),
        (429, {"Retry-After": "1"}, kubehttp.THROTTLE_RETRIES, None),
        (500, {"Retry-After": "1"}, 0, None),
    ])
    def test_retry_after(self, status: int, headers: dict[str, str], attempt: int,
                         wait: float | None) -> None:
        assert kubehttp.retry_after(status, headers, attempt) == wait

    def test_retry_after_as_a_date(self) -> None:
        when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5)
        wait = kubehttp.retry_after(429, {"Retry-After": when.strftime(
            "%a, %d %b %Y %H:%M:%S GMT")}, 0)
        assert wait is not None and 3.0 <= wait <= 5.0

    def test_env_proxy(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("https_proxy", "http://proxy.corp:3128")
        monkeypatch.setenv("no_proxy", "internal.corp")
        assert kubehttp.env_proxy("https://api.example.com:6443") == "http://proxy.corp:3128"
        assert kubehttp.env_proxy("https://k8s.internal.corp:6443") is None
        assert kubehttp.env_proxy("https://127.0.0.1:6443") is None
        assert kubehttp.env_proxy("https://localhost:6443") is None
