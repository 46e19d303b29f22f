"""Unit tests for engine.drift.confirm and engine.drift.paths: drift the server would keep.

The "server" objects here are what a server-side-apply dry run returns: the
live object with the desired fields applied, defaulted and stripped of zero
values exactly as the API server stores them.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import drift
from engine.drift import confirm, paths, values

FAST = settings(max_examples=200, deadline=None, database=None)


def rendered() -> dict[str, Any]:
    """A DaemonSet as a chart renders it, setting fields the server drops or rewrites."""
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "node-exporter", "namespace": "monitoring"},
        "spec": {
            "selector": {"matchLabels": {"app": "ne"}},
            "template": {
                "metadata": {"labels": {"app": "ne"}},
                "spec": {
                    "hostIPC": False,
                    "hostPID": False,
                    "containers": [{
                        "name": "exporter",
                        "image": "quay.io/ne:1",
                        "args": ["--web", "--path"],
                        "env": [{"name": "NODE", "value": ""}, {"name": "MODE", "value": "x"}],
                        "ports": [{"name": "metrics", "containerPort": 9100}],
                        "readinessProbe": {"tcpSocket": {"port": 9100},
                                           "initialDelaySeconds": 0},
                        "resources": {"requests": {"cpu": 0.5, "memory": "0.5Gi"}},
                    }],
                },
            },
        },
    }


def stored(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` as the API server keeps it: zero values dropped, quantities canonical, defaults."""
    out = copy.deepcopy(obj)
    pod = out["spec"]["template"]["spec"]
    for key in ("hostIPC", "hostPID"):
        if pod.get(key) is False:
            del pod[key]
    pod.update(dnsPolicy="ClusterFirst", restartPolicy="Always")
    for container in pod["containers"]:
        for env in container.get("env", []):
            if env.get("value") == "":
                del env["value"]
        probe = container.get("readinessProbe", {})
        if probe.get("initialDelaySeconds") == 0:
            del probe["initialDelaySeconds"]
        probe.update(periodSeconds=10, timeoutSeconds=1)
        container["resources"] = {"requests": {"cpu": "500m", "memory": "512Mi"}}
        for port in container.get("ports", []):
            port.setdefault("protocol", "TCP")
    out["metadata"].update(resourceVersion="7", uid="u-1", generation=1)
    out["status"] = {"numberReady": 1}
    return out


def pod_of(obj: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = obj["spec"]["template"]["spec"]
    return pod


class TestConfirm:
    """Candidates survive only where the server's version still differs from live."""

    def test_dropped_zero_values_are_candidates_but_not_drift(self) -> None:
        live = stored(rendered())
        candidates = drift.diff(rendered(), live)
        assert candidates.paths == (
            "/spec/template/spec/containers/0/env/0/value",
            "/spec/template/spec/containers/0/readinessProbe/initialDelaySeconds",
            "/spec/template/spec/hostIPC",
            "/spec/template/spec/hostPID",
        )
        server = stored(rendered())  # applying changes nothing the server would keep
        assert confirm.confirm(candidates, rendered(), server, live) == drift.DriftReport(False)

    def test_a_hand_edit_of_a_dropped_field_is_still_drift(self) -> None:
        live = stored(rendered())
        pod_of(live)["hostIPC"] = True
        pod_of(live)["containers"][0]["env"][0]["value"] = "injected"
        server = stored(rendered())  # the dry run sets false and "": the server drops both
        report = confirm.confirm(drift.diff(rendered(), live), rendered(), server, live)
        assert report.paths == ("/spec/template/spec/containers/0/env/0/value",
                                "/spec/template/spec/hostIPC")
        assert report.changes[1] == drift.Change("/spec/template/spec/hostIPC", False, True)

    def test_real_changes_survive(self) -> None:
        live = stored(rendered())
        pod_of(live)["containers"][0]["image"] = "evil:6"
        pod_of(live)["containers"][0]["args"] = ["--web", "--path", "--debug"]
        report = confirm.confirm(drift.diff(rendered(), live), rendered(), stored(rendered()),
                                 live)
        assert report.paths == ("/spec/template/spec/containers/0/args/2",
                                "/spec/template/spec/containers/0/image")

    def test_named_entries_are_found_by_name_in_the_server_version(self) -> None:
        live = stored(rendered())
        sidecar = {"name": "proxy", "image": "envoy:1"}
        pod_of(live)["containers"].insert(0, sidecar)
        pod_of(live)["containers"][1]["image"] = "evil:6"
        server = stored(rendered())
        pod_of(server)["containers"].insert(0, sidecar)  # kept: another manager's entry
        report = confirm.confirm(drift.diff(rendered(), live), rendered(), server, live)
        assert report.paths == ("/spec/template/spec/containers/0/image",)

    def test_fields_the_server_prunes_are_not_drift(self) -> None:
        desired = {"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
                   "metadata": {"name": "k", "namespace": "m"},
                   "spec": {"retention": "10d", "removedInV2": {"a": 1}}}
        live = {**copy.deepcopy(desired), "spec": {"retention": "10d"}}
        candidates = drift.diff(desired, live)
        assert candidates.paths == ("/spec/removedInV2",)
        assert not confirm.confirm(candidates, desired, copy.deepcopy(live), live).drifted

    def test_namespace_on_a_cluster_scoped_object_is_not_drift(self) -> None:
        desired = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": "reader", "namespace": "monitoring"}, "rules": []}
        live = {**desired, "metadata": {"name": "reader"}}
        candidates = drift.diff(desired, live)
        assert candidates.paths == ("/metadata/namespace",)
        assert not confirm.confirm(candidates, desired, live, live).drifted

    def test_deleted_and_clean_reports_pass_through(self) -> None:
        deleted = drift.diff(rendered(), None)
        assert confirm.confirm(deleted, rendered(), {}, {}) is deleted
        clean = drift.DriftReport(drifted=False)
        assert confirm.confirm(clean, rendered(), {}, {}) is clean


class TestFallback:
    """Without the server, zero values a built-in kind lacks are taken as dropped."""

    def test_built_in_zero_values_are_dropped(self) -> None:
        live = stored(rendered())
        pod_of(live)["containers"][0]["image"] = "evil:6"
        guess = confirm.without_dropped_zeroes(drift.diff(rendered(), live), "apps/v1")
        assert guess.paths == ("/spec/template/spec/containers/0/image",)

    def test_a_changed_zero_value_is_kept(self) -> None:
        live = stored(rendered())
        pod_of(live)["hostIPC"] = True
        guess = confirm.without_dropped_zeroes(drift.diff(rendered(), live), "apps/v1")
        assert guess.paths == ("/spec/template/spec/hostIPC",)

    def test_custom_resources_keep_their_zero_values(self) -> None:
        desired = {"apiVersion": "example.com/v1", "kind": "Thing",
                   "metadata": {"name": "t"}, "spec": {"enabled": False, "note": ""}}
        live = {**desired, "spec": {}}
        report = drift.diff(desired, live)
        assert confirm.without_dropped_zeroes(report, "example.com/v1") == report

    @pytest.mark.parametrize(("api_version", "expected"), [
        ("v1", True), ("apps/v1", True), ("batch/v1", True),
        ("networking.k8s.io/v1", True), ("rbac.authorization.k8s.io/v1", True),
        ("monitoring.coreos.com/v1", False), ("nvidia.com/v1", False),
    ])
    def test_built_in(self, api_version: str, expected: bool) -> None:
        assert values.built_in(api_version) is expected

    @pytest.mark.parametrize(("value", "expected"), [
        ("", True), (0, True), (0.0, True), (False, True),
        (None, False), ({}, False), ([], False), ("0", False), (1, False), (True, False),
    ])
    def test_is_zero(self, value: Any, expected: bool) -> None:
        assert values.is_zero(value) is expected


class TestFingerprint:
    """Equal when only server bookkeeping differs, so a dry run is not repeated."""

    def test_ignores_status_and_versions(self) -> None:
        live = stored(rendered())
        later = copy.deepcopy(live)
        later["metadata"]["resourceVersion"] = "8"
        later["status"] = {"numberReady": 3}
        assert confirm.fingerprint(rendered(), live) == confirm.fingerprint(rendered(), later)

    def test_changes_with_either_side(self) -> None:
        live = stored(rendered())
        edited = copy.deepcopy(live)
        edited["metadata"]["annotations"] = {"note": "x"}
        other = rendered()
        other["spec"]["template"]["spec"]["hostIPC"] = True
        stamp = confirm.fingerprint(rendered(), live)
        assert stamp != confirm.fingerprint(rendered(), edited)
        assert stamp != confirm.fingerprint(other, live)


class TestResolve:
    """Desired pointers find the matching entry in another version of the object."""

    DESIRED = {"spec": {"containers": [{"name": "a", "env": [{"name": "X"}]}, {"name": "b"}],
                        "args": ["x", "y"]}}

    @pytest.mark.parametrize(("pointer", "other", "expected"), [
        ("/spec/containers/1", {"spec": {"containers": [{"name": "b", "i": 1}]}},
         {"name": "b", "i": 1}),
        ("/spec/containers/0/env/0", {"spec": {"containers": [
            {"name": "s"}, {"name": "a", "env": [{"name": "Y"}, {"name": "X", "v": 1}]}]}},
         {"name": "X", "v": 1}),
        ("/spec/args/1", {"spec": {"args": ["p", "q", "r"]}}, "q"),
        ("/spec/args/2", {"spec": {"args": ["p", "q", "r"]}}, "r"),
        ("/spec/containers/1", {"spec": {"containers": [{"name": "a"}]}}, paths.MISSING),
        ("/spec/args/0", {"spec": {"args": "scalar"}}, paths.MISSING),
        ("/spec/gone", {"spec": {}}, paths.MISSING),
        ("", {"whole": 1}, {"whole": 1}),
    ])
    def test_resolve(self, pointer: str, other: dict[str, Any], expected: Any) -> None:
        assert paths.resolve(self.DESIRED, other, paths.parse_pointer(pointer)) == expected


KEYS = st.text(alphabet="ab/~", min_size=1, max_size=3)
SCALARS = st.one_of(st.booleans(), st.integers(-5, 5), st.text(alphabet="xyz", max_size=3))
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, min_size=1, max_size=3),
                            st.dictionaries(KEYS, inner, min_size=1, max_size=3)),
    max_leaves=12,
).map(lambda value: {"spec": value})


def leaves(node: Any, tokens: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in leaves(v, (*tokens, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in leaves(v, (*tokens, str(i)))]
    return [tokens]


def changed(doc: dict[str, Any], tokens: tuple[str, ...]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node: Any = out
    for token in tokens[:-1]:
        node = node[int(token)] if isinstance(node, list) else node[token]
    node[int(tokens[-1]) if isinstance(node, list) else tokens[-1]] = "__changed__"
    return out


class TestConfirmProperties:
    """What the server would keep decides, whatever the document."""

    @FAST
    @given(DOCS, st.data())
    def test_a_server_keeping_live_clears_everything(self, doc: dict[str, Any],
                                                     data: st.DataObject) -> None:
        live = changed(doc, data.draw(st.sampled_from(leaves(doc))))
        assert not confirm.confirm(drift.diff(doc, live), doc, live, live).drifted

    @FAST
    @given(DOCS, st.data())
    def test_a_server_keeping_desired_confirms_everything(self, doc: dict[str, Any],
                                                         data: st.DataObject) -> None:
        live = changed(doc, data.draw(st.sampled_from(leaves(doc))))
        report = drift.diff(doc, live)
        assert confirm.confirm(report, doc, copy.deepcopy(doc), live) == report
