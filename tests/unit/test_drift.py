"""Unit tests for engine.drift: normalising, diffing and exclusions."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from deepdiff import DeepDiff
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import api, drift

FAST = settings(max_examples=200, deadline=None, database=None)


def desired_deployment() -> dict[str, Any]:
    """A Deployment as a chart renders it."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "gpu-operator",
            "namespace": "gpu-operator",
            "labels": {"app": "gpu-operator", "flotilla.dev/managed-by": "flotilla"},
            "annotations": {"flotilla.dev/owner": "ClusterProfile//gpu"},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "gpu-operator"}},
            "template": {
                "metadata": {"labels": {"app": "gpu-operator"}},
                "spec": {
                    "serviceAccountName": "gpu-operator",
                    "nodeSelector": {},
                    "containers": [
                        {
                            "name": "gpu-operator",
                            "image": "nvcr.io/nvidia/gpu-operator:v26.3.3",
                            "args": ["--leader-elect"],
                            "env": [
                                {"name": "WATCH_NAMESPACE", "value": ""},
                                {"name": "DRIVER_VERSION", "value": "580.126.20"},
                            ],
                            "ports": [{"name": "metrics", "containerPort": 8080}],
                            "resources": {
                                "limits": {"cpu": "1000m", "memory": "1024Mi"},
                                "requests": {"cpu": "200m", "memory": "256Mi"},
                            },
                        }
                    ],
                },
            },
        },
    }


def live_deployment() -> dict[str, Any]:
    """The same Deployment as the API server returns it: defaulted, annotated, with status."""
    live = desired_deployment()
    live["metadata"].update(
        uid="5b0c2d0e-8f5d-4a8e-9a43-1d8f0b7c9e21",
        resourceVersion="48213",
        generation=3,
        creationTimestamp="2026-11-26T10:00:00Z",
        managedFields=[{"manager": "flotilla", "operation": "Apply", "apiVersion": "apps/v1"}],
    )
    live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "3"
    del live["spec"]["template"]["spec"]["nodeSelector"]  # the server drops empty maps
    spec = live["spec"]
    spec.update(
        progressDeadlineSeconds=600,
        revisionHistoryLimit=10,
        strategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
        },
    )
    pod = spec["template"]["spec"]
    pod.update(
        restartPolicy="Always",
        dnsPolicy="ClusterFirst",
        schedulerName="default-scheduler",
        securityContext={},
        terminationGracePeriodSeconds=30,
        serviceAccount="gpu-operator",
    )
    container = pod["containers"][0]
    container.update(
        imagePullPolicy="IfNotPresent",
        terminationMessagePath="/dev/termination-log",
        terminationMessagePolicy="File",
        resources={
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "200m", "memory": "256Mi"},
        },
    )
    container["ports"][0]["protocol"] = "TCP"
    live["status"] = {"observedGeneration": 3, "replicas": 2, "availableReplicas": 2}
    return live


class TestNormalise:
    """normalise drops what the API server populates and nothing else."""

    def test_drops_server_fields(self) -> None:
        out = drift.normalise(live_deployment())
        assert "status" not in out
        assert set(out["metadata"]) == {"name", "namespace", "labels", "annotations"}
        assert out["metadata"]["annotations"] == {"flotilla.dev/owner": "ClusterProfile//gpu"}

    def test_drops_emptied_annotations_but_keeps_empty_ones(self) -> None:
        emptied = {"metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}}}
        assert drift.normalise(emptied) == {"metadata": {}}
        assert drift.normalise({"metadata": {"annotations": {}}}) == {
            "metadata": {"annotations": {}}
        }

    def test_leaves_input_untouched(self) -> None:
        live = live_deployment()
        drift.normalise(live)
        assert live == live_deployment()

    def test_folds_secret_string_data_into_data(self) -> None:
        secret = {"apiVersion": "v1", "kind": "Secret", "stringData": {"token": "abc"}}
        assert drift.normalise(secret)["data"] == {"token": "YWJj"}
        assert "stringData" not in drift.normalise(secret)


class TestDiff:
    """diff compares only the fields the desired object sets."""

    def test_defaulted_live_object_is_not_drifted(self) -> None:
        report = drift.diff(desired_deployment(), live_deployment())
        assert report == drift.DriftReport(drifted=False)

    def test_scaled_replicas_are_reported(self) -> None:
        live = live_deployment()
        live["spec"]["replicas"] = 5
        report = drift.diff(desired_deployment(), live)
        assert report.paths == ("/spec/replicas",)
        assert report.changes == (drift.Change("/spec/replicas", 2, 5),)

    def test_changed_image_and_removed_label(self) -> None:
        live = live_deployment()
        live["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
        del live["metadata"]["labels"]["app"]
        report = drift.diff(desired_deployment(), live)
        assert report.paths == (
            "/metadata/labels/app",
            "/spec/template/spec/containers/0/image",
        )
        assert report.changes[0].live is None

    def test_named_lists_match_by_name_and_ignore_injected_entries(self) -> None:
        live = live_deployment()
        containers = live["spec"]["template"]["spec"]["containers"]
        containers.insert(0, {"name": "istio-proxy", "image": "istio/proxyv2:1.30.3"})
        containers[1]["env"].reverse()
        assert not drift.diff(desired_deployment(), live).drifted

    def test_named_list_paths_use_desired_indices(self) -> None:
        live = live_deployment()
        env = live["spec"]["template"]["spec"]["containers"][0]["env"]
        env.reverse()
        env[0]["value"] = "999.0"  # DRIVER_VERSION, index 1 in the desired object
        report = drift.diff(desired_deployment(), live)
        assert report.paths == ("/spec/template/spec/containers/0/env/1/value",)

    def test_missing_named_entry_is_reported(self) -> None:
        live = live_deployment()
        live["spec"]["template"]["spec"]["containers"][0]["env"].pop()
        report = drift.diff(desired_deployment(), live)
        assert report.paths == ("/spec/template/spec/containers/0/env/1",)

    def test_scalar_lists_compare_by_index_and_length(self) -> None:
        live = live_deployment()
        live["spec"]["template"]["spec"]["containers"][0]["args"].append("--debug")
        report = drift.diff(desired_deployment(), live)
        assert report.changes == (
            drift.Change("/spec/template/spec/containers/0/args/1", None, "--debug"),
        )

    def test_quantities_compare_by_amount(self) -> None:
        live = live_deployment()
        live["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "2"
        report = drift.diff(desired_deployment(), live)
        assert report.paths == ("/spec/template/spec/containers/0/resources/limits/cpu",)

    def test_int_or_string_and_bool_comparison(self) -> None:
        assert not drift.diff({"spec": {"port": 8080}}, {"spec": {"port": "8080"}}).drifted
        assert drift.diff({"spec": {"on": True}}, {"spec": {"on": 1}}).drifted
        assert drift.diff({"spec": {"cpu": "1"}}, {"spec": {"cpu": "1000m"}}).drifted

    def test_type_change_is_reported_at_its_path(self) -> None:
        report = drift.diff({"spec": {"x": {"a": 1}}}, {"spec": {"x": [1]}})
        assert report.paths == ("/spec/x",)

    def test_deleted_object(self) -> None:
        report = drift.diff(desired_deployment(), None)
        assert report.drifted and report.deleted and report.paths == ()

    def test_exclusion_hides_subtree(self) -> None:
        live = live_deployment()
        live["spec"]["replicas"] = 7
        live["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
        report = drift.diff(
            desired_deployment(), live, exclusions=["/spec/replicas", "/spec/template/spec"]
        )
        assert not report.drifted

    def test_exclusion_with_escaped_tokens(self) -> None:
        live = live_deployment()
        live["metadata"]["labels"]["flotilla.dev/managed-by"] = "someone"
        pointer = "/metadata/labels/flotilla.dev~1managed-by"
        assert drift.diff(desired_deployment(), live).paths == (pointer,)
        assert not drift.diff(desired_deployment(), live, exclusions=[pointer]).drifted

    def test_malformed_pointer_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="JSON pointer"):
            drift.diff({}, {}, exclusions=["spec/replicas"])
        with pytest.raises(ValueError, match="JSON pointer"):
            drift.parse_pointer("/a~2b")


class TestPointers:
    """JSON pointers follow RFC 6901 escaping."""

    @pytest.mark.parametrize(
        ("pointer", "tokens"),
        [("", ()), ("/a", ("a",)), ("/a~1b", ("a/b",)), ("/m~0n", ("m~n",)), ("/~01", ("~1",))],
    )
    def test_round_trip(self, pointer: str, tokens: tuple[str, ...]) -> None:
        assert drift.parse_pointer(pointer) == tokens
        assert drift.format_pointer(tokens) == pointer


class TestStripExcluded:
    """strip_excluded removes excluded subtrees from a copy of the desired object."""

    def test_removes_paths_and_leaves_input_untouched(self) -> None:
        desired = desired_deployment()
        out = drift.strip_excluded(
            desired, ["/spec/replicas", "/spec/template/spec/containers/0/env/0", "/nope/x"]
        )
        assert "replicas" not in out["spec"]
        env = out["spec"]["template"]["spec"]["containers"][0]["env"]
        assert [e["name"] for e in env] == ["DRIVER_VERSION"]
        assert desired == desired_deployment()

    def test_indices_refer_to_the_original_list(self) -> None:
        assert drift.strip_excluded({"a": [0, 1, 2, 3]}, ["/a/1", "/a/2"]) == {"a": [0, 3]}

    def test_root_pointer_strips_everything(self) -> None:
        assert drift.strip_excluded({"a": 1}, [""]) == {}


class TestIgnoreAnnotation:
    """excluded_by_annotation reads flotilla.dev/drift-ignore."""

    @pytest.mark.parametrize(("value", "expected"), [("true", True), ("True", True), ("no", False)])
    def test_values(self, value: str, expected: bool) -> None:
        obj = {"metadata": {"annotations": {api.DRIFT_IGNORE_ANNOTATION: value}}}
        assert drift.excluded_by_annotation(obj) is expected

    def test_missing_metadata(self) -> None:
        assert not drift.excluded_by_annotation({"kind": "ConfigMap"})


# JSON-like documents; keys use "/" and "~" to exercise pointer escaping and
# letters only, so no generated key collides with "status" or "name".
KEYS = st.text(alphabet="ab/~", min_size=1, max_size=3)
SCALARS = st.one_of(st.booleans(), st.integers(-5, 5), st.text(alphabet="xyz", max_size=3))
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3),
        st.dictionaries(KEYS, inner, min_size=1, max_size=3),
    ),
    max_leaves=12,
).map(lambda value: {"spec": value})
MUTATED = "__mutated__"  # never generated, so always a real change


def leaf_paths(node: Any, tokens: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in leaf_paths(v, (*tokens, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in leaf_paths(v, (*tokens, str(i)))]
    return [tokens]


def mutated(doc: dict[str, Any], tokens: tuple[str, ...]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node: Any = out
    for token in tokens[:-1]:
        node = node[int(token)] if isinstance(node, list) else node[token]
    last = tokens[-1]
    node[int(last) if isinstance(node, list) else last] = MUTATED
    return out


class TestDiffProperties:
    """Properties of diff and normalise over random documents."""

    @FAST
    @given(DOCS)
    def test_a_document_never_drifts_from_itself(self, doc: dict[str, Any]) -> None:
        assert drift.diff(doc, copy.deepcopy(doc)) == drift.DriftReport(drifted=False)

    @FAST
    @given(DOCS, st.data())
    def test_a_changed_leaf_is_reported_unless_excluded(
        self, doc: dict[str, Any], data: st.DataObject
    ) -> None:
        tokens = data.draw(st.sampled_from(leaf_paths(doc)))
        live = mutated(doc, tokens)
        assert drift.diff(doc, live).paths == (drift.format_pointer(tokens),)
        cut = data.draw(st.integers(1, len(tokens)))  # the leaf itself or an ancestor
        exclusion = drift.format_pointer(tokens[:cut])
        assert not drift.diff(doc, live, exclusions=[exclusion]).drifted
        if not tokens[cut - 1].isdigit():
            # Excluding a map key (not a list entry, which would shift the
            # list) leaves a desired object that no longer asserts the change.
            stripped = drift.strip_excluded(live, [exclusion])
            assert not drift.diff(stripped, doc).drifted

    @FAST
    @given(DOCS, st.data())
    def test_paths_agree_with_deepdiff_on_same_shaped_documents(
        self, doc: dict[str, Any], data: st.DataObject
    ) -> None:
        live = copy.deepcopy(doc)
        for tokens in data.draw(st.lists(st.sampled_from(leaf_paths(doc)), max_size=3)):
            live = mutated(live, tokens)
        tree = DeepDiff(doc, live, view="tree")
        expected = sorted(
            drift.format_pointer([str(t) for t in item.path(output_format="list")])
            for items in tree.values()
            for item in items
        )
        assert list(drift.diff(doc, live).paths) == expected

    @FAST
    @given(DOCS, st.dictionaries(st.sampled_from(drift.SERVER_METADATA), SCALARS))
    def test_normalise_is_idempotent(self, doc: dict[str, Any], server: dict[str, Any]) -> None:
        doc = {**doc, "metadata": {**server, "annotations": {drift.SERVER_ANNOTATIONS[0]: "x"}}}
        doc["status"] = {"ready": True}
        once = drift.normalise(doc)
        assert drift.normalise(once) == once
        assert once == {"spec": doc["spec"], "metadata": {}}
