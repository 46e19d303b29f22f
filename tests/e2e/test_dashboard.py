"""`flotilla dashboard` in a real browser: headless Chromium (Debian's) against the dev fleet.

The page is loaded once; a cluster is then labelled so a profile selects it,
and the matrix cell for that profile and cluster must turn Provisioned in the
same page (live through server-sent events, no reload), read through the
DevTools protocol. A screenshot lands in the test's tmp folder. Also: the
refusal to bind a non-loopback address, and the SSE stream and JSON as a
plain HTTP client sees them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fleetkit import FLEET_NS, Engine, Kubectl, eventually

from engine.devfleet import procs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Board:
    def __init__(self, url: str, proc: subprocess.Popen[str]) -> None:
        self.url, self.proc = url, proc


@pytest.fixture
def board(engine: Engine) -> Iterator[Board]:
    port = procs.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "dashboard", "--kubeconfig",
                             str(engine.fleet.management.kubeconfig), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        def up() -> bool:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                return bool(json.loads(_get(url + "api/fleet")).get("columns"))
            except OSError:
                return False
        eventually(up, timeout=30, what="the dashboard serving the fleet")
        yield Board(url, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _get(url: str) -> str:
    import urllib.request
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


class _Profile:
    """A ClusterProfile of one ConfigMap for clusters labelled dash-<uid>=on."""

    def __init__(self, mgmt: Kubectl) -> None:
        self.mgmt, uid = mgmt, uuid.uuid4().hex[:6]
        self.name, self.label = f"dash-{uid}", f"dash-{uid}"
        mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {self.name}}}
spec:
  clusterSelector: {{matchLabels: {{{self.label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {self.name}}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {self.name}, namespace: flotilla-system}}
data:
  app.yaml: |
    apiVersion: v1
    kind: ConfigMap
    metadata: {{name: {self.name}, namespace: default}}
    data: {{shown: "yes"}}
""")

    def close(self) -> None:
        self.mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-2", f"{self.label}-",
                  check=False)
        self.mgmt("delete", "clusterprofile", self.name, "--timeout=90s", check=False)
        self.mgmt("delete", "configmap", "-n", "flotilla-system", self.name, check=False)


class _Chromium:
    """Headless Chromium driven over the DevTools protocol (one page, no reloads)."""

    def __init__(self, folder: Path) -> None:
        assert CHROMIUM
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-port=0", f"--user-data-dir={folder / 'profile'}",
             "--window-size=1400,1000", "about:blank"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.ids = 0

    def endpoint(self) -> str:
        assert self.proc.stderr
        deadline = time.monotonic() + 30
        for line in self.proc.stderr:
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            if found:
                return found.group(1)
            assert time.monotonic() < deadline, "chromium did not start its DevTools endpoint"
        raise AssertionError("chromium exited before its DevTools endpoint was up")

    async def call(self, ws: aiohttp.ClientWebSocketResponse, method: str,
                   session: str | None = None, **params: Any) -> dict[str, Any]:
        self.ids += 1
        msg: dict[str, Any] = {"id": self.ids, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        await ws.send_json(msg)
        while True:
            reply = await asyncio.wait_for(ws.receive_json(), 30)
            if reply.get("id") == self.ids:
                assert "error" not in reply, reply
                result: dict[str, Any] = reply["result"]
                return result

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_matrix_shows_a_cluster_just_labelled_live(engine: Engine, mgmt: Kubectl, board: Board,
                                                   tmp_path: Path) -> None:
    # Fails, never skips: `make test` installs Debian's chromium (`make browser`).
    assert CHROMIUM is not None, "Debian's chromium is not installed (apt-get install chromium)"
    profile = _Profile(mgmt)
    browser = _Chromium(tmp_path)
    try:
        shot = asyncio.run(_drive(browser, board, mgmt, profile, tmp_path))
    finally:
        browser.close()
        profile.close()
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:4] == b"\x89PNG"


async def _drive(browser: _Chromium, board: Board, mgmt: Kubectl, profile: _Profile,
                 folder: Path) -> Path:
    cell = (f'document.querySelector(\'tr[data-profile="{profile.name}"] '
            f'td[data-cluster="{FLEET_NS}/cluster-2"]\')')
    async with aiohttp.ClientSession() as http, http.ws_connect(
            browser.endpoint(), max_msg_size=0) as ws:
        target = await browser.call(ws, "Target.createTarget", url="about:blank")
        attached = await browser.call(ws, "Target.attachToTarget",
                                      targetId=target["targetId"], flatten=True)
        session = attached["sessionId"]

        async def js(expr: str) -> Any:
            out = await browser.call(ws, "Runtime.evaluate", session, expression=expr,
                                     returnByValue=True)
            return out["result"].get("value")

        async def until(expr: str, want: Any, timeout: float) -> Any:
            deadline = time.monotonic() + timeout
            while (got := await js(expr)) != want:
                assert time.monotonic() < deadline, f"{expr} is {got!r}, not {want!r}"
                await asyncio.sleep(0.3)
            return got

        await browser.call(ws, "Page.navigate", session, url=board.url)
        # The profile's row is there, not selecting cluster-2 yet ("·"), and the stream is live.
        await until(f"{cell} ? {cell}.className : null", "none", 30)
        await until("document.getElementById('live').textContent.startsWith('live')", True, 30)
        marker = await js("window.flotillaMarker = 'same page'")
        assert marker == "same page"

        mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-2", f"{profile.label}=on")
        await until(f"{cell} ? {cell}.dataset.phase : null", "Provisioned", 60)
        await until(f"{cell}.className", "ok", 30)
        assert await js("window.flotillaMarker") == "same page"  # no reload happened
        text = await js("document.body.innerText")
        assert "NVIDIA-H100-80GB-HBM3" in text and "Recent Events" in text
        await browser.call(ws, "Emulation.setDeviceMetricsOverride", session, width=1400,
                           height=1000, deviceScaleFactor=1, mobile=False)
        shot = await browser.call(ws, "Page.captureScreenshot", session, format="png",
                                  captureBeyondViewport=True)
    path = folder / "dashboard.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {path}")
    return path


def test_refuses_a_non_loopback_address_without_allow_remote(engine: Engine) -> None:
    done = subprocess.run([sys.executable, "-m", "engine.cli", "dashboard", "--kubeconfig",
                           str(engine.fleet.management.kubeconfig), "--address", "0.0.0.0",
                           "--port", str(procs.free_port())],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "not a loopback address" in done.stderr and "--allow-remote" in done.stderr


def test_stream_and_json_for_a_plain_http_client(board: Board) -> None:
    async def first_event() -> str:
        async with aiohttp.ClientSession() as http, http.get(board.url + "stream") as resp:
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            async for line in resp.content:
                if line.startswith(b"data: "):
                    return str(json.loads(line[6:]))
        raise AssertionError("the stream ended without an event")

    fragment = asyncio.run(asyncio.wait_for(first_event(), 30))
    assert "<h2>Clusters</h2>" in fragment and f"{FLEET_NS}/cluster-1" in fragment
    view = json.loads(_get(board.url + "api/fleet"))
    assert f"{FLEET_NS}/cluster-1" in view["columns"]
    assert any(c["gpuTotal"] > 0 for c in view["clusters"])
    page = _get(board.url)
    assert "EventSource('stream')" in page and 'id="fleet"' in page
