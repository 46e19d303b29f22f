"""Connections keep what touches the disk private and remove it when they close."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from pathlib import Path

import yaml

from engine.adapters import connections, kubeconfig
from engine.devfleet import certs

TOKEN = "conn-secret-5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b"


def _kubeconfig(token: str = TOKEN) -> str:
    ca = base64.b64encode(certs.make_ca().cert).decode()
    return yaml.safe_dump({
        "clusters": [{"name": "c", "cluster": {"server": "https://10.9.8.7:6443",
                                               "certificate-authority-data": ca}}],
        "users": [{"name": "u", "user": {"token": token}},
                  {"name": "other", "user": {"token": "another-users-secret"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x"})


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_private_files_and_their_removal(tmp_path: Path) -> None:
    # pyhelm3 asks its helm for the version, once; nothing else runs helm here.
    helm = tmp_path.parent / f"{tmp_path.name}-helm"
    helm.write_text("#!/bin/sh\nprintf v3.18.4\n")
    helm.chmod(0o755)
    conns = connections.Connections(tmp_path, helm)

    async def scenario() -> None:
        conn = await conns.get("fleet", "east", _kubeconfig())
        assert TOKEN not in repr(conn) and "10.9.8.7" in repr(conn)
        assert _mode(conn.private) == 0o700
        kubeconfig = conn.releases().kubeconfig
        assert _mode(kubeconfig) == 0o600
        text = kubeconfig.read_text()
        assert TOKEN in text and "another-users-secret" not in text  # the current context only
        # A new kubeconfig replaces the connection and removes the old one's files.
        again = await conns.get("fleet", "east", _kubeconfig("rotated-token-value"))
        assert again is not conn and not conn.private.exists()
        await conns.forget("fleet", "east")
        assert not again.private.exists()
        await conns.get("fleet", "west", _kubeconfig())
        await conns.close()

    asyncio.run(scenario())
    assert list(tmp_path.iterdir()) == []


def test_what_a_dead_process_left_is_removed(tmp_path: Path) -> None:
    live = connections.Connections(tmp_path, Path("helm"))
    dead = connections.Connections(tmp_path, Path("helm"))

    async def scenario() -> tuple[Path, Path]:
        a = await live.get("fleet", "a", _kubeconfig())
        b = await dead.get("fleet", "b", _kubeconfig())
        return a.private, b.private

    kept, left = asyncio.run(scenario())
    assert dead._lock is not None
    dead._lock.close()  # as if the process died: its lock goes with it
    legacy = tmp_path / "fleet" / "c" / "0123abcd"
    legacy.mkdir(parents=True)
    (legacy / "kubeconfig").write_text(TOKEN)  # the layout before private directories
    fresh = connections.Connections(tmp_path, Path("helm"))
    asyncio.run(fresh.get("fleet", "d", _kubeconfig()))
    assert kept.exists() and not left.exists() and not legacy.exists()
    asyncio.run(live.close())
    asyncio.run(fresh.close())


def test_one_client_per_server_and_identity(tmp_path: Path) -> None:
    conns = connections.Connections(tmp_path, Path("helm"), max_requests=7)
    text = _kubeconfig()  # each call makes a new CA
    renamed = yaml.safe_load(text)
    renamed["contexts"][0]["name"] = "another-context-name"
    renamed["current-context"] = "another-context-name"

    async def scenario() -> None:
        east = await conns.get("fleet", "east", text)
        # Same server and credentials (a context of another name): the same client.
        west = await conns.get("fleet", "west", yaml.safe_dump(renamed))
        assert west.client is east.client and west.watch is east.watch
        assert west.private != east.private  # helm's files stay per cluster
        # Another token is another identity: its own client.
        rotated = text.replace(TOKEN, "a-different-token")
        other = await conns.get("tenant", "north", rotated)
        assert other.client is not east.client and conns.pools() == 2
        # All clients share one bound on requests in flight.
        assert east.client.limiter is other.client.limiter
        assert east.client.limiter is not None and east.client.limiter._value == 7
        # The shared client lives while one of its clusters does.
        await conns.forget("fleet", "east")
        assert conns.pools() == 2 and conns.cached("fleet", "west") is west
        await conns.forget("fleet", "west")
        assert conns.pools() == 1
        # A kubeconfig rotated to the other identity moves the cluster to that client.
        moved = await conns.get("fleet", "east", rotated)
        assert moved.client is other.client and conns.pools() == 1
        await conns.close()
        assert conns.pools() == 0

    asyncio.run(scenario())


def test_identity_is_server_and_credentials() -> None:
    base = yaml.safe_load(_kubeconfig())
    same = kubeconfig.parse(yaml.safe_dump(base))
    base["contexts"][0]["context"]["namespace"] = "team-a"  # not part of the identity
    assert connections.identity(kubeconfig.parse(yaml.safe_dump(base))) == \
        connections.identity(same)
    base["clusters"][0]["cluster"]["server"] = "https://10.9.8.8:6443"
    assert connections.identity(kubeconfig.parse(yaml.safe_dump(base))) != \
        connections.identity(same)
