"""Unit tests for the helm progress reporter: hook Jobs, messages, and when it writes."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.deployers import hookwatch


def job(name: str, hook: str | None = "post-install", done: str | None = None,
        ) -> dict[str, Any]:
    annotations = {hookwatch.HOOK_ANNOTATION: hook} if hook else {}
    conditions = [{"type": done, "status": "True"}] if done else []
    return {"metadata": {"name": name, "annotations": annotations},
            "status": {"conditions": conditions}}


def test_hook_jobs_pick_annotated_jobs_with_their_state() -> None:
    found = hookwatch.hook_jobs([job("b", done="Failed"), job("plain", hook=None), job("a"),
                                job("c", hook="pre-upgrade", done="Complete")])
    assert [(j.name, j.hook, j.state) for j in found] == [
        ("a", "post-install", "Running"), ("b", "post-install", "Failed"),
        ("c", "pre-upgrade", "Complete")]


def test_describe_is_coarse_and_names_the_hook() -> None:
    jobs = hookwatch.hook_jobs([job("cert-manager-startupapicheck")])
    assert hookwatch.describe("install", 47.0, jobs) == (
        "helm install running 45s, waiting for hook Job cert-manager-startupapicheck "
        "(post-install)")
    assert hookwatch.describe("upgrade", 59.0, []) == "helm upgrade running 45s"
    assert hookwatch.elapsed_text(130) == "2m" and hookwatch.elapsed_text(3725) == "1h2m"
    failed = hookwatch.hook_jobs([job("x", done="Failed")])
    assert hookwatch.describe("install", 5, failed).endswith("hook Job x (post-install) failed")


def test_reporter_writes_only_what_changed_and_stops() -> None:
    async def scenario() -> tuple[list[str], str]:
        jobs: list[dict[str, Any]] = []
        lines: list[str] = []

        async def list_jobs() -> list[dict[str, Any]]:
            return list(jobs)

        async def publish(line: str) -> None:
            lines.append(line)

        reporter = hookwatch.Reporter(list_jobs, publish, first_after=0.01, interval=0.01)
        reporter.start("install")
        await asyncio.sleep(0.1)  # ~10 ticks, one line: nothing changed
        jobs.append(job("check"))
        await asyncio.sleep(0.1)
        await reporter.stop()
        count = len(lines)
        await asyncio.sleep(0.05)
        assert len(lines) == count  # stopped: no more writes
        return lines, await reporter.failure_detail()

    lines, detail = asyncio.run(scenario())
    assert lines == ["helm install running 0s",
                     "helm install running 0s, waiting for hook Job check (post-install)"]
    assert detail == "hook Job check (post-install) running"


def test_reporter_without_publish_runs_nothing_beside_helm() -> None:
    calls: list[int] = []

    async def list_jobs() -> list[dict[str, Any]]:
        calls.append(1)
        return [job("h", done="Failed")]

    async def scenario() -> str:
        reporter = hookwatch.Reporter(list_jobs, None, first_after=0.0, interval=0.01)
        reporter.start("upgrade")
        await asyncio.sleep(0.05)
        assert not calls
        await reporter.stop()
        return await reporter.failure_detail()

    assert asyncio.run(scenario()) == "hook Job h (post-install) failed"
