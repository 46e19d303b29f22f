"""The lean API server's flag set, start-up batches, and virtual-cluster placement and RBAC.

Pure (engine.devfleet.lean, the pure parts of engine.devfleet.virtual): no process starts.
"""

from __future__ import annotations

import threading
import time

import pytest

from engine.devfleet import lean, virtual


class TestFlags:
    """A default server gets nothing extra; a lean one gets every setting, each removable."""

    def test_default_server_has_no_extra_flags(self) -> None:
        assert lean.flags(False) == []
        assert lean.env(False) == {"GOGC": lean.DEFAULT_GOGC}

    def test_lean_server_serves_only_the_listed_groups(self) -> None:
        runtime = next(f for f in lean.flags(True) if f.startswith("--runtime-config="))
        pairs = runtime.removeprefix("--runtime-config=").split(",")
        assert pairs[0] == "api/all=false"
        served = {p.removesuffix("=true") for p in pairs[1:]}
        assert served == set(lean.API_GROUPS)
        # What our tests and charts need from a workload cluster.
        for needed in ("v1", "apps/v1", "rbac.authorization.k8s.io/v1",
                       "authentication.k8s.io/v1", "authorization.k8s.io/v1"):
            assert needed in served
        # What a workload cluster of ours never needs.
        for dropped in ("storage.k8s.io/v1", "resource.k8s.io/v1", "autoscaling/v2",
                        "flowcontrol.apiserver.k8s.io/v1", "certificates.k8s.io/v1"):
            assert dropped not in served

    def test_lean_server_drops_watch_cache_polls_and_plugins(self) -> None:
        flags = lean.flags(True)
        assert "--watch-cache=false" in flags
        assert "--etcd-count-metric-poll-period=0" in flags
        assert "--etcd-db-metric-poll-interval=0" in flags
        assert f"--event-ttl={lean.EVENT_TTL}" in flags
        plugins = next(f for f in flags if f.startswith("--disable-admission-plugins="))
        disabled = plugins.split("=", 1)[1].split(",")
        assert "Priority" in disabled and "DefaultStorageClass" in disabled
        # Namespaces and ServiceAccounts are still admitted as on a real cluster.
        assert "NamespaceLifecycle" not in disabled and "ServiceAccount" not in disabled

    def test_lean_environment(self) -> None:
        assert lean.env(True) == {"GOGC": lean.GOGC, "GOMAXPROCS": lean.GOMAXPROCS}
        # GOMEMLIMIT below the live heap makes Go collect without pause: never set.
        assert "GOMEMLIMIT" not in lean.env(True)

    @pytest.mark.parametrize("name", [s.name for s in lean.settings()])
    def test_each_setting_can_be_left_out(self, name: str) -> None:
        setting = next(s for s in lean.settings() if s.name == name)
        without = lean.flags(True, without=[name])
        assert not set(setting.flags) & set(without)
        assert len(without) == len(lean.flags(True)) - len(setting.flags)
        env = lean.env(True, without=[name])
        for key, value in setting.env:
            assert env.get(key) != value

    def test_settings_have_unique_names_and_say_why(self) -> None:
        names = [s.name for s in lean.settings()]
        assert len(names) == len(set(names))
        assert all(s.why and (s.flags or s.env) for s in lean.settings())


class TestWindow:
    """API servers start at most `size` at a time; all start; a failure is raised."""

    def _run(self, items: list[int], size: int, fail: int | None = None
             ) -> tuple[list[int], int]:
        lock = threading.Lock()
        state = {"now": 0, "most": 0}
        started: list[int] = []

        def run(item: int) -> None:
            with lock:
                started.append(item)
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])
            time.sleep(0.01)
            with lock:
                state["now"] -= 1
            if item == fail:
                raise RuntimeError(f"server {item} exited")

        lean.windowed(items, size, run)
        return started, state["most"]

    def test_at_most_size_at_once_and_all_run(self) -> None:
        started, most = self._run(list(range(25)), 4)
        assert sorted(started) == list(range(25))
        assert 1 < most <= 4
        # Started in order: the management server (first) is never behind a workload one.
        assert started[0] == 0

    def test_one_at_a_time(self) -> None:
        started, most = self._run(list(range(5)), 1)
        assert started == list(range(5)) and most == 1

    def test_nothing(self) -> None:
        assert self._run([], 3) == ([], 0)

    def test_a_failure_is_raised_and_the_rest_not_started(self) -> None:
        started: list[int] = []

        def run(item: int) -> None:
            started.append(item)
            if item == 2:
                raise RuntimeError("server 2 exited")
            time.sleep(0.01)

        with pytest.raises(RuntimeError, match="server 2 exited"):
            lean.windowed(list(range(200)), 2, run)
        assert 2 in started and len(started) < 20

    def test_size_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="at least 1"):
            lean.windowed([1], 0, lambda _: None)


class TestPlacement:
    """Virtual clusters fill the workload servers in order, per_server each."""

    def test_fills_servers_in_order(self) -> None:
        pairs = virtual.placement(["a", "b", "c"], per_server=2, total=5)
        assert pairs == [("vc-0000", "a"), ("vc-0001", "a"), ("vc-0002", "b"),
                         ("vc-0003", "b"), ("vc-0004", "c")]

    def test_thousand_on_hundred_servers(self) -> None:
        servers = [f"cluster-{i}" for i in range(1, 101)]
        pairs = virtual.placement(servers, per_server=10, total=1000, prefix="s")
        assert len({name for name, _ in pairs}) == 1000
        per = {s: sum(1 for _, x in pairs if x == s) for s in servers}
        assert set(per.values()) == {10}
        assert pairs[-1] == ("s-0999", "cluster-100")

    def test_names_widen_past_ten_thousand(self) -> None:
        pairs = virtual.placement(["a", "b"], per_server=6000, total=12000)
        assert pairs[0][0] == "vc-00000" and pairs[-1][0] == "vc-11999"

    def test_too_many_for_the_servers(self) -> None:
        with pytest.raises(ValueError, match="do not fit on 2 API servers"):
            virtual.placement(["a", "b"], per_server=3, total=7)

    def test_per_server_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="per_server"):
            virtual.placement(["a"], per_server=0, total=0)


class TestTenantObjects:
    """A virtual cluster's RBAC grants everything in its namespace and nothing else."""

    def test_rights_stay_in_the_namespace(self) -> None:
        objs = {o["kind"]: o for o in virtual.tenant_objects("vc-0003")}
        assert next(iter(objs)) == "Namespace"
        assert objs["Role"]["metadata"]["namespace"] == "vc-0003"
        assert objs["RoleBinding"]["roleRef"]["kind"] == "Role"
        subject = objs["RoleBinding"]["subjects"][0]
        assert subject == {"kind": "ServiceAccount", "name": virtual.SERVICE_ACCOUNT,
                           "namespace": "vc-0003"}
        # The one cluster-scoped grant: get on its own Namespace object, by name.
        (rule,) = objs["ClusterRole"]["rules"]
        assert rule == {"apiGroups": [""], "resources": ["namespaces"],
                        "resourceNames": ["vc-0003"], "verbs": ["get"]}
        assert objs["ClusterRoleBinding"]["roleRef"]["name"] == \
            objs["ClusterRole"]["metadata"]["name"]

    def test_kubeconfig_defaults_to_its_namespace(self) -> None:
        import yaml  # what kubectl and the controller read kubeconfigs as

        doc = yaml.safe_load(virtual.render_kubeconfig(
            name="vc-0001", server="https://127.0.0.1:6443", ca=b"CA", token="t0k"))
        assert doc["contexts"][0]["context"]["namespace"] == "vc-0001"
        assert doc["users"][0]["user"] == {"token": "t0k"}

    def test_describe_says_they_share_servers(self) -> None:
        made = [virtual.VirtualCluster(name=f"vc-{i}", server=f"s{i // 3}", url="u",
                                       kubeconfig="k") for i in range(6)]
        text = virtual.describe(made)
        assert text.startswith("6 virtual clusters on 2 API servers (up to 3 per server")
        assert "not told they share" in text
