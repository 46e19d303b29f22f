"""Production-controller logic on plain data: helm versions, Lease decisions, shards, logs."""

from __future__ import annotations

import json
import logging
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine import errors, shards
from engine.adapters import helmbin
from engine.controller import leader, logs

WALL = datetime(2026, 12, 2, 1, 2, 3, tzinfo=UTC)


# -- helm -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "want"), [
    ("v3.22.0+g1a2b3c4", (3, 22, 0)), ("v3.14.4", (3, 14, 4)), ("4.0.1", (4, 0, 1)),
    ("garbage", None), ("", None)])
def test_helm_versions_parse(text: str, want: tuple[int, int, int] | None) -> None:
    assert helmbin.parse_version(text) == want


@pytest.mark.parametrize(("version", "ok"), [
    ((3, 13, 9), False), ((3, 14, 0), True), ((3, 22, 0), True), ((4, 0, 0), False)])
def test_supported_helm_range(version: tuple[int, int, int], ok: bool) -> None:
    assert helmbin.supported(version) is ok


def _fake_helm(tmp_path: Path, prints: str) -> Path:
    script = tmp_path / "helm"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{prints}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_helm_too_old_is_named_at_startup(tmp_path: Path) -> None:
    with pytest.raises(errors.NonRetriableError) as caught:
        helmbin.find(str(_fake_helm(tmp_path, "v3.9.0")))
    assert caught.value.reason == "HelmUnsupported"
    assert "3.9.0" in str(caught.value) and "install Helm 3" in str(caught.value)


def test_helm_in_range_is_found(tmp_path: Path) -> None:
    fake = _fake_helm(tmp_path, "v3.22.0+gabc")
    assert helmbin.find(str(fake)) == fake.resolve()


def test_missing_helm_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           ) -> None:
    monkeypatch.delenv("FLOTILLA_HELM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no helm anywhere
    with pytest.raises(errors.NonRetriableError) as caught:
        helmbin.locate()
    assert caught.value.reason == "HelmNotFound" and "--helm" in str(caught.value)
    with pytest.raises(errors.NonRetriableError):
        helmbin.locate(str(tmp_path / "nope"))


def test_workdir_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOTILLA_WORKDIR", "/srv/flotilla")
    assert helmbin.workdir("/x") == Path("/x")
    assert helmbin.workdir() == Path("/srv/flotilla")
    monkeypatch.delenv("FLOTILLA_WORKDIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/c")
    assert helmbin.workdir() == Path("/c/flotilla/controller")


# -- leases ---------------------------------------------------------------------------------

def test_a_held_lease_is_respected_until_it_expires_by_our_clock() -> None:
    view = leader.LeaseView("b")
    view.observe({"holderIdentity": "a", "leaseDurationSeconds": 15}, now=100.0)
    assert view.held_by_other(now=114.9)
    view.observe({"holderIdentity": "a", "leaseDurationSeconds": 15}, now=110.0)  # unchanged
    assert not view.held_by_other(now=115.1)  # expiry counts from when it last changed
    renewed = {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": "later"}
    view.observe(renewed, now=116.0)
    assert view.held_by_other(now=130.0)


def test_claiming_counts_transitions_and_keeps_own_acquire_time() -> None:
    view = leader.LeaseView("b")
    view.observe({"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 2,
                  "acquireTime": "old"}, now=0.0)
    spec = view.claim(15, WALL)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 3
    assert spec["acquireTime"] == spec["renewTime"] == "2026-12-02T01:02:03.000000Z"
    view.observe(spec, now=1.0)
    renewal = view.claim(15, WALL.replace(second=5))
    assert renewal["acquireTime"] == "2026-12-02T01:02:03.000000Z"
    assert renewal["leaseTransitions"] == 3
    assert renewal["renewTime"].startswith("2026-12-02T01:02:05")


def test_a_released_lease_is_free_at_once() -> None:
    view = leader.LeaseView("a")
    view.observe({"holderIdentity": "a", "leaseDurationSeconds": 15}, now=0.0)
    released = view.released(WALL)
    assert released["holderIdentity"] is None and released["leaseDurationSeconds"] == 1
    other = leader.LeaseView("b")
    other.observe({**released, "holderIdentity": ""}, now=1.0)
    assert not other.held_by_other(now=1.0)


def test_timings_must_nest() -> None:
    leader.Timings().check()
    with pytest.raises(ValueError, match="retry-period < renew-deadline < lease-duration"):
        leader.Timings(lease_duration=10, renew_deadline=10, retry_period=2).check()


# -- shards ---------------------------------------------------------------------------------

def _cluster(**annotations: str) -> dict[str, object]:
    return {"metadata": {"name": "c", "namespace": "fleet", "annotations": annotations}}


def test_shard_annotations_ours_first_then_sveltos() -> None:
    assert shards.shard_of(_cluster()) == ""
    assert shards.shard_of(_cluster(**{"sharding.projectsveltos.io/key": "eu"})) == "eu"
    both = _cluster(**{"sharding.projectsveltos.io/key": "eu", "sharding.flotilla.dev/key": "us"})
    assert shards.shard_of(both) == "us"
    assert shards.serves("us", both) and not shards.serves(None, both)
    assert shards.serves(None, _cluster(**{"sharding.flotilla.dev/key": " "}))
    assert shards.runs_profiles(None) and not shards.runs_profiles("eu")


# -- logs -----------------------------------------------------------------------------------

def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("flotilla.controller", logging.WARNING, __file__, 1, msg, None,
                               None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_level_and_object() -> None:
    line = logs.JsonFormatter().format(_record("cluster left", object="fleet/c1"))
    doc = json.loads(line)
    assert doc["level"] == "warning" and doc["object"] == "fleet/c1"
    assert doc["msg"] == "cluster left" and doc["ts"].endswith("Z")
    kopf_style = logs.JsonFormatter().format(_record("x", k8s_ref={"name": "p", "namespace": ""}))
    assert json.loads(kopf_style)["object"] == "p"


def test_text_lines_name_the_object() -> None:
    line = logs.TextFormatter().format(_record("cluster left", object="fleet/c1"))
    assert " WARNING flotilla.controller [fleet/c1] cluster left" in line


def test_third_party_loggers_stay_quiet() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        logs.configure("json", "info")
        assert logging.getLogger("celpy.Evaluator").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("flotilla.x").getEffectiveLevel() == logging.INFO
        logs.configure("text", "debug")
        assert logging.getLogger("celpy").getEffectiveLevel() == logging.DEBUG
        with pytest.raises(ValueError):
            logs.configure("xml", "info")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name in logs.QUIET:
            logging.getLogger(name).setLevel(logging.NOTSET)
