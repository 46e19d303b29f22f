"""The dashboard's view on plain data: matrix cells, drift rows, GPU facts, Events, escaping."""

from __future__ import annotations

from typing import Any

from engine.cli import dashboard, dashview


def _cluster(name: str, gpus: dict[str, int] | None = None, **labels: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"nodes": 4 if gpus else 0}
    if gpus:
        facts.update(gpus=gpus, gpuTotal=sum(gpus.values()), gpuNodes=2)
    return {"kind": "WorkloadCluster",
            "metadata": {"namespace": "fleet", "name": name, "labels": labels},
            "status": {"ready": True, "version": "v1.37.0", "facts": facts,
                       "connection": {"state": "Healthy"}}}


def _profile(name: str) -> dict[str, Any]:
    return {"kind": "ClusterProfile", "metadata": {"name": name, "generation": 1},
            "spec": {"clusterSelector": {"matchLabels": {"gpu": "on"}},
                     "rollout": {"stages": [
                         {"name": "canary",
                          "clusterSelector": {"matchLabels": {"ring": "canary"}}},
                         {"name": "main"}]}},
            "status": {"phase": "Progressing", "revision": 2,
                       "rollout": {"phase": "Progressing", "stage": "main",
                                   "targetRevision": 2}}}


def _summary(profile: str, cluster: str, phase: str, *, healthy: bool = True,
             drift: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"kind": "ClusterSummary",
            "metadata": {"namespace": "fleet", "name": f"cp-{profile}-{cluster}"},
            "spec": {"profileRef": {"kind": "ClusterProfile", "name": profile},
                     "clusterRef": {"namespace": "fleet", "name": cluster}, "revision": 2},
            "status": {"phase": phase, "healthy": healthy, "revision": 2,
                       "drift": drift or []}}


def _view() -> dict[str, Any]:
    clusters = [_cluster("c-2", {"NVIDIA-H100-80GB-HBM3": 16}),
                _cluster("c-1", {"NVIDIA-H100-80GB-HBM3": 8, "NVIDIA-A100": 4}, ring="canary"),
                _cluster("c-3")]
    drift = [{"group": "apps", "version": "v1", "kind": "Deployment",
              "namespace": "gpu-operator", "name": "gpu-operator",
              "paths": ["/spec/replicas"], "detectedAt": "2026-01-01T00:00:00Z"}]
    summaries = [_summary("gpu", "c-1", "Provisioned"),
                 _summary("gpu", "c-2", "Provisioned", drift=drift),
                 _summary("other", "c-3", "Failed", healthy=False)]
    events = [{"type": "Warning", "reason": "Drifted", "message": "x drifted: /spec/replicas",
               "lastTimestamp": "2026-01-01T00:00:02Z",
               "involvedObject": {"kind": "ClusterSummary", "namespace": "fleet",
                                  "name": "cp-gpu-c-2"}},
              {"type": "Normal", "reason": "Deployed", "message": "<b>ok</b>",
               "lastTimestamp": "2026-01-01T00:00:01Z", "count": 3,
               "involvedObject": {"kind": "ClusterSummary", "name": "s"}}]
    return dashview.fleet_view([_profile("other"), _profile("gpu")], summaries, clusters,
                               events, now=1e9)


def test_matrix_columns_are_sorted_clusters_and_cells_follow_phase_health_drift() -> None:
    view = _view()
    assert view["columns"] == ["fleet/c-1", "fleet/c-2", "fleet/c-3"]
    gpu, other = view["matrix"]
    assert gpu["profile"] == "gpu" and other["profile"] == "other"
    assert [c and c["class"] for c in gpu["cells"]] == ["ok", "drift", None]
    assert gpu["cells"][1]["drifted"] == 1
    assert [c and c["class"] for c in other["cells"]] == [None, None, "failed"]


def test_cell_class() -> None:
    assert dashview.cell_class("Provisioned", True, False) == "ok"
    assert dashview.cell_class("Provisioned", False, False) == "progress"
    assert dashview.cell_class("Provisioning", False, False) == "progress"
    assert dashview.cell_class("Provisioned", True, True) == "drift"
    assert dashview.cell_class("Failed", False, True) == "failed"
    assert dashview.cell_class("Pending", False, False) == "pending"


def test_drift_rows_carry_field_paths_and_clusters_their_gpus_by_product() -> None:
    view = _view()
    assert view["drift"] == [{"profile": "gpu", "cluster": "fleet/c-2",
                              "object": "Deployment gpu-operator/gpu-operator",
                              "paths": ["/spec/replicas"],
                              "detectedAt": "2026-01-01T00:00:00Z"}]
    c1 = view["clusters"][0]
    assert c1["gpus"] == {"NVIDIA-A100": 4, "NVIDIA-H100-80GB-HBM3": 8}
    assert c1["gpuTotal"] == 12 and c1["labels"] == {"ring": "canary"}
    assert view["clusters"][2]["gpus"] == {} and view["clusters"][2]["gpuTotal"] == 0


def test_rollout_stages_and_events_newest_first() -> None:
    view = _view()
    gpu = next(r for r in view["rollouts"] if r["name"] == "gpu")
    assert [(s["name"], s["total"]) for s in gpu["stages"]] == [("canary", 1), ("main", 1)]
    assert [e["reason"] for e in view["events"]] == ["Drifted", "Deployed"]
    assert view["events"][0]["object"] == "ClusterSummary fleet/cp-gpu-c-2"


def test_render_escapes_and_shows_everything() -> None:
    text = dashview.render(_view())
    assert "&lt;b&gt;ok&lt;/b&gt;" in text and "<b>ok</b>" not in text
    assert '<tr data-profile="gpu">' in text
    assert 'data-cluster="fleet/c-2" data-phase="Provisioned"' in text
    assert "<code>/spec/replicas</code>" in text
    assert "8 x NVIDIA-H100-80GB-HBM3" in text and "(x3)" in text
    page = dashview.page(text)
    assert page.startswith("<!doctype html>") and "EventSource('stream')" in page


def test_empty_fleet() -> None:
    text = dashview.render(dashview.fleet_view([], [], [], [], now=0))
    assert "No profiles yet." in text and "No clusters registered." in text


def test_only_loopback_addresses_count_as_loopback() -> None:
    assert dashboard.loopback("127.0.0.1") and dashboard.loopback("::1")
    assert dashboard.loopback("localhost") and dashboard.loopback("127.0.0.2")
    assert not dashboard.loopback("0.0.0.0") and not dashboard.loopback("::")
    assert not dashboard.loopback("192.168.1.5") and not dashboard.loopback("example.com")


def test_a_profile_whose_spec_cannot_be_read_does_not_blank_the_page() -> None:
    bad = {"kind": "ClusterProfile", "metadata": {"name": "bad"},
           "spec": {"rollout": {"stages": "not a list"}}}
    view = dashview.fleet_view([bad], [], [_cluster("c-1")], [], now=0)
    assert view["rollouts"][0]["rollout"]["phase"] == "Invalid"
    assert view["matrix"][0]["profile"] == "bad"
    assert "bad" in dashview.render(view)
