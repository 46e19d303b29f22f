"""The lean API server's flag set and the fleet's start-up batches (engine.devfleet.lean).

Pure: these build command lines and group lists; no process is started.
"""

from __future__ import annotations

import pytest

from engine.devfleet import lean


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


class TestBatches:
    """API servers start in consecutive groups, order kept, none empty."""

    def test_groups_of_ten(self) -> None:
        groups = lean.batches(list(range(25)), 10)
        assert groups == [list(range(10)), list(range(10, 20)), list(range(20, 25))]

    def test_fewer_than_a_batch(self) -> None:
        assert lean.batches(["management", "cluster-1"], 10) == [["management", "cluster-1"]]

    def test_nothing(self) -> None:
        assert lean.batches([], 10) == []

    def test_size_one(self) -> None:
        assert lean.batches("abc", 1) == [["a"], ["b"], ["c"]]

    def test_size_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="at least 1"):
            lean.batches([1], 0)
