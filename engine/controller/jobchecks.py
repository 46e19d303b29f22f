"""validateHealths `jobCheck` (Sveltos): run a Job on the workload cluster, judge it by its outcome.

Used by `deployment.Deployment` for each validateHealths entry with a `jobCheck`.
The Job manifest is read from the referenced ConfigMap or Secret in the management
cluster each time the check runs (it is not part of the profile's revision). The
Job carries the digest of that manifest and of the summary's content hash: it runs
once per revision, and a Job of another digest is replaced. `health.job_step`
decides the next step from the live Job; this module carries it out. A check is
never waited on here: a running Job reports "is running" and the unhealthy
summary is looked at again shortly.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import time
from typing import Any

import yaml

from engine import api, health
from engine.adapters import connections
from engine.controller import context
from engine.model import types
from engine.model.healthcheck import JobCheck

JOB_API = "batch/v1"


async def run(ctx: context.Context, conn: connections.Connection, check: types.HealthCheck,
              job_check: JobCheck, *, profile_namespace: str | None,
              revision_hash: str) -> health.HealthResult:
    """One evaluation of a jobCheck: create, poll, replace or clean up its Job."""
    job, problem = await _manifest(ctx, job_check, profile_namespace)
    if job is None:
        return health.HealthResult(False, f"{check.name}: {problem}")
    meta = job["metadata"]
    namespace, name = meta.get("namespace") or "default", meta["name"]
    digest = hashlib.sha256(
        json.dumps([job, revision_hash], sort_keys=True).encode()).hexdigest()[:16]
    live = await conn.client.get(JOB_API, "Job", namespace, name)
    step, said = health.job_step(live, digest=digest, now=time.time(),
                                 timeout=job_check.timeout)
    if step is health.JobStep.CREATE:
        await conn.workload.ensure_namespace(namespace)
        await conn.client.create(_stamped(job, namespace, check.name, digest))
    elif step in (health.JobStep.REPLACE, health.JobStep.RETRY, health.JobStep.PASSED):
        # Passed: gone afterwards, as Sveltos leaves it; the verdict stands for this revision.
        await conn.client.delete(JOB_API, "Job", namespace, name, propagation="Background")
    return health.HealthResult(step is health.JobStep.PASSED,
                               f"{check.name}: Job {namespace}/{name} {said}")


def _stamped(job: dict[str, Any], namespace: str, check: str, digest: str) -> dict[str, Any]:
    out = copy.deepcopy(job)
    meta = out["metadata"]
    meta["namespace"] = namespace
    meta["labels"] = {**(meta.get("labels") or {}), api.JOB_CHECK_LABEL: check[:63]}
    meta["annotations"] = {**(meta.get("annotations") or {}),
                           api.JOB_CHECK_DIGEST_ANNOTATION: digest}
    return out


async def _manifest(ctx: context.Context, job_check: JobCheck,
                    profile_namespace: str | None) -> tuple[dict[str, Any] | None, str]:
    """The one Job the referenced ConfigMap/Secret holds, or None and why not."""
    ref = job_check.job_ref
    namespace = ref.namespace or profile_namespace or ""
    what = f"jobCheck.jobRef {ref.kind} {namespace}/{ref.name}"
    if not namespace:
        return None, f"{what}: a ClusterProfile's jobRef needs a namespace"
    if profile_namespace is not None and namespace != profile_namespace:
        return None, f"{what}: a Profile may only reference its own namespace"
    body = await ctx.mgmt.get("v1", ref.kind, namespace, ref.name)
    if body is None:
        return None, f"{what} not found"
    jobs: list[dict[str, Any]] = []
    for key, text in _texts(body):
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            # Never the content in the message: it may come from a Secret.
            return None, f"{what}: key {key} is not YAML"
        jobs += [d for d in documents if isinstance(d, dict) and d.get("kind") == "Job"]
    if len(jobs) != 1:
        return None, f"{what} must hold exactly one Job, not {len(jobs)}"
    job = jobs[0]
    if not isinstance(job.get("metadata"), dict) or not job["metadata"].get("name"):
        return None, f"{what}: the Job has no metadata.name"
    job.setdefault("apiVersion", JOB_API)
    return job, ""


def _texts(body: dict[str, Any]) -> list[tuple[str, str]]:
    """The data values of a ConfigMap, or the decoded ones of a Secret."""
    if body.get("kind") == "Secret":
        out = []
        for key, value in (body.get("data") or {}).items():
            try:
                out.append((key, base64.b64decode(value).decode()))
            except (ValueError, UnicodeDecodeError):
                continue
        return out
    return [(key, str(value)) for key, value in (body.get("data") or {}).items()]
