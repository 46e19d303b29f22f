"""Unit tests for what the read commands show, on plain data: status trees, stage progress,
rollout outcomes, why, completion, and finding the management kubeconfig as kubectl does."""

from __future__ import annotations

import datetime
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import cli, errors, select
from engine.adapters import kubeconfig
from engine.cli import completion, mgmt, rolloutwatch, views
from engine.model import types

NOW = 1_800_000_000.0


def _stamp(seconds_ago: float) -> str:
    moment = datetime.datetime.fromtimestamp(NOW - seconds_ago, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _profile(**status: Any) -> dict[str, Any]:
    return {"kind": "ClusterProfile", "metadata": {"name": "gpu", "generation": 2},
            "spec": {"clusterSelector": {"matchLabels": {"gpu": "on"}},
                     "rollout": {"stages": [
                         {"name": "canary", "clusterSelector": {"matchLabels": {"ring": "c"}},
                          "minSuccessTime": "5m"},
                         {"name": "main"}], "progressDeadline": "10m"}},
            "status": {"phase": "Progressing", "revision": 2, "matched": 3, "ready": 1,
                       "observedGeneration": 2, **status}}


def _cluster(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "fleet", "labels": {"gpu": "on", **labels}},
            "status": {"ready": True}}


def _summary(cluster: str, *, target: int, current: int | None, healthy: bool = True,
             since: float = 3600, assigned: float = 60, drift: list[Any] | None = None,
             services: list[Any] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Provisioned" if current else "Provisioning",
                              "healthy": healthy, "healthySince": _stamp(since),
                              "drift": drift or [], "services": services or []}
    if current:
        status["revision"] = current
    return {"metadata": {"name": f"cp-gpu-{cluster}", "namespace": "fleet"},
            "spec": {"clusterRef": {"namespace": "fleet", "name": cluster}, "revision": target,
                     "assignedAt": _stamp(assigned)},
            "status": status}


CLUSTERS = [_cluster("a", ring="c"), _cluster("b"), _cluster("c")]


def _view() -> dict[str, Any]:
    summaries = [
        _summary("a", target=2, current=2, since=30,  # healthy 30 s < 5 m soak
                 services=[{"name": "gpu-operator", "kind": "HelmRelease",
                            "status": "Provisioned", "version": "v26.3.3", "healthy": True}]),
        _summary("b", target=1, current=1,
                 drift=[{"kind": "ConfigMap", "namespace": "x", "name": "app",
                         "paths": ["/data/level"]}]),
        _summary("c", target=2, current=1, healthy=False, assigned=30),
    ]
    profile = _profile(rollout={"phase": "Progressing", "stage": "canary", "targetRevision": 2,
                                "message": "stage canary soaking"})
    return views.profile_view(profile, summaries, CLUSTERS, now=NOW)


class TestProfileView:
    """Stages and standings are the planner's, applied to what status records."""

    def test_stages_and_standings(self) -> None:
        view = _view()
        assert [s["name"] for s in view["stages"]] == ["canary", "main"]
        canary, main = view["stages"]
        assert [(c["cluster"], c["standing"]) for c in canary["clusters"]] == [
            ("fleet/a", "soaking")]
        assert [(c["cluster"], c["standing"]) for c in main["clusters"]] == [
            ("fleet/b", "waiting"), ("fleet/c", "in flight")]
        assert (main["total"], main["done"], main["waiting"], main["in flight"]) == (2, 0, 1, 1)
        assert main["clusters"][0]["drift"] == ["ConfigMap x/app /data/level"]

    def test_failed_past_the_deadline(self) -> None:
        late = _summary("c", target=2, current=1, healthy=False, assigned=3600)
        view = views.profile_view(_profile(rollout={"targetRevision": 2}), [late], CLUSTERS,
                                  now=NOW)
        (entry,) = view["stages"][1]["clusters"]
        assert entry["standing"] == "failed"
        assert entry["reason"] == "not healthy at revision 2 within 600s"


class TestRendering:
    """The tree and the progress lines a person reads."""

    def test_tree(self) -> None:
        lines = views.render_tree([_view()]).splitlines()
        assert lines[0] == ("ClusterProfile gpu  Progressing  revision 2, rollout Progressing  "
                            "(1/3 ready, 0 drifted, 0 failed)")
        assert lines[1:] == [
            "  stage canary soaking",
            "├─ stage canary  0/1 done, 1 soaking",
            "│  └─ fleet/a  Provisioned  healthy  in sync  r2  soaking",
            "│     └─ gpu-operator  HelmRelease v26.3.3  Provisioned  healthy",
            "└─ stage main  0/2 done, 1 in flight, 1 waiting",
            "   ├─ fleet/b  Provisioned  healthy  drift 1  r1  waiting",
            "   │  └─ drift: ConfigMap x/app /data/level",
            "   └─ fleet/c  Provisioned  unhealthy  in sync  r1→r2  in flight",
        ]

    def test_no_cluster(self) -> None:
        view = views.profile_view(_profile(), [], CLUSTERS, now=NOW)
        assert "└─ no cluster selected" in views.render_tree([view])

    def test_progress_plain_and_terminal(self) -> None:
        view = _view()
        assert views.render_progress(view, terminal=False) == [
            "ClusterProfile gpu revision 2: Progressing — stage canary soaking",
            "  canary: 0/1 done, 1 soaking",
            "  main: 0/2 done, 1 in flight, 1 waiting"]
        bars = views.render_progress(view, terminal=True)
        assert bars[1] == f"  canary [{'▓' * 24}] 0/1 done, 1 soaking"
        assert bars[2] == f"  main   [{'▒' * 12}{'░' * 12}] 0/2 done, 1 in flight, 1 waiting"

    @pytest.mark.parametrize(("counts", "bar"), [
        ({"done": 4}, "█" * 24),
        ({"done": 1, "failed": 1}, "█" * 6 + "✗" * 6 + "░" * 12),
        ({}, "░" * 24),
    ])
    def test_bar(self, counts: dict[str, int], bar: str) -> None:
        stage = {"total": 4, "done": 0, "soaking": 0, "in flight": 0, "failed": 0, **counts}
        assert views.progress_bar(stage) == f"[{bar}]"

    def test_why(self) -> None:
        spec = types.ProfileSpec.from_dict({"clusterSelector": {"matchLabels": {"ring": "c"}}})
        a, b = CLUSTERS[0], CLUSTERS[1]
        p = _profile()
        view = views.why_view(b, [(p, select.explain(spec, b, namespace=None)),
                                  ({**p, "metadata": {"name": "bad"}}, "spec.x: broken")])
        assert view["profiles"][0]["selected"] is False
        text = views.render_why(view)
        assert text.splitlines()[0] == "WorkloadCluster fleet/b (labels: gpu=on)"
        assert "selected by: none" in text
        assert "  ClusterProfile gpu\n    ✗ clusterSelector: matchLabels ring=c: cluster has " \
               "no ring" in text
        assert "    ✗ spec.x: broken" in text
        chosen = views.why_view(a, [(p, select.explain(spec, a, namespace=None))])
        assert "selected by:\n  ClusterProfile gpu (Selector)\n    ✓ clusterSelector" in \
            views.render_why(chosen)


class TestScreen:
    """A terminal is redrawn in place; a log gets only the lines that changed."""

    def test_terminal_redraws(self) -> None:
        out = io.StringIO()
        screen = rolloutwatch.Screen(out, terminal=True, output=None)
        screen.show(_view())
        first = out.getvalue()
        assert "\x1b[" not in first and first.count("\n") == 3
        screen.show(_view())
        assert out.getvalue()[len(first):].startswith("\x1b[3F\x1b[J")

    def test_log_gets_changed_lines(self) -> None:
        out = io.StringIO()
        screen = rolloutwatch.Screen(out, terminal=False, output=None)
        view = _view()
        screen.show(view)
        screen.show(view)
        assert out.getvalue().count("canary: 0/1 done") == 1
        view["stages"][0].update(done=1, soaking=0)
        screen.show(view)
        assert out.getvalue().splitlines()[-1] == "canary: 1/1 done"

    def test_json_lines(self) -> None:
        out = io.StringIO()
        rolloutwatch.Screen(out, terminal=False, output="json").show(_view())
        assert json.loads(out.getvalue())["stages"][0]["name"] == "canary"


class TestOutcome:
    """`rollout status --watch` exit codes, like kubectl rollout status."""

    @pytest.mark.parametrize(("rollout", "code"), [
        ({"phase": "Complete", "targetRevision": 2}, 0),
        ({"phase": "Failed", "targetRevision": 2, "message": "a failed"}, 1),
        ({"phase": "RollingBack", "targetRevision": 2}, 1),
        ({"phase": "Paused", "targetRevision": 2}, 2),
        ({"phase": "WaitingApproval", "targetRevision": 2, "stage": "main"}, 2),
        ({"phase": "Progressing", "targetRevision": 2}, None),
        ({"phase": "Complete", "targetRevision": 1}, None),  # the new revision not yet made
    ])
    def test_codes(self, rollout: dict[str, Any], code: int | None) -> None:
        got = rolloutwatch.outcome(_profile(rollout=rollout))
        assert (got[0] if got else None) == code

    def test_stale_generation_waits(self) -> None:
        body = _profile(rollout={"phase": "Complete", "targetRevision": 2})
        body["status"]["observedGeneration"] = 1
        assert rolloutwatch.outcome(body) is None
        assert not rolloutwatch.observed(body)  # and no progress is drawn from it
        body["status"]["observedGeneration"] = body["metadata"]["generation"]
        assert rolloutwatch.observed(body)


class TestCompletion:
    """Candidates come from the parser itself."""

    nodes = completion.table(cli.parser())

    @pytest.mark.parametrize(("words", "want"), [
        (["ro"], ["rollout"]),
        (["rollout", ""], ["status", "history", "pause", "resume", "approve", "undo"]),
        (["rollout", "status", "--wa"], ["--watch"]),
        (["status", "-o", ""], ["json", "yaml"]),
        (["completion", "z"], ["zsh"]),
        (["why", "--kubeconfig", "x"], []),  # a file: the shell completes it
    ])
    def test_complete(self, words: list[str], want: list[str]) -> None:
        assert completion.complete(words, self.nodes) == want

    def test_file_values(self) -> None:
        assert completion.wants_file(["status", "--kubeconfig", ""], self.nodes)
        assert not completion.wants_file(["status", "-o", ""], self.nodes)
        assert not completion.wants_file(["status", ""], self.nodes)

    def test_scripts(self) -> None:
        script = completion.bash(self.nodes)
        assert script.rstrip().endswith("complete -o default -F _flotilla_complete flotilla")
        assert "[rollout]='status history pause resume approve undo'" in script
        assert "bashcompinit" in completion.zsh(self.nodes)


def _kubeconfig(server: str, context: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": server,
                                                       "certificate-authority": "ca.crt"}}],
            "users": [{"name": context, "user": {"token": "t"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}]}


class TestKubeconfigLookup:
    """--kubeconfig, else KUBECONFIG (merged), else ~/.kube/config; --context picks."""

    @pytest.fixture
    def files(self, tmp_path: Path) -> tuple[Path, Path]:
        (tmp_path / "one").mkdir()
        (tmp_path / "one" / "ca.crt").write_text("not used until TLS")
        first = tmp_path / "one" / "config"
        first.write_text(yaml.safe_dump(_kubeconfig("https://one:6443", "one")))
        (tmp_path / "ca.crt").write_text("not used until TLS")
        second = tmp_path / "two.yaml"
        second.write_text(yaml.safe_dump(_kubeconfig("https://two:6443", "two")))
        return first, second

    def test_explicit_file_and_context(self, files: tuple[Path, Path]) -> None:
        assert mgmt.config(str(files[0]), None, {}).server == "https://one:6443"
        with pytest.raises(errors.NonRetriableError, match="context 'two' is not in the "
                           "kubeconfig"):
            mgmt.config(str(files[0]), "two", {})

    def test_kubeconfig_variable_merges(self, files: tuple[Path, Path], tmp_path: Path) -> None:
        env = {"KUBECONFIG": f"{files[0]}:{tmp_path / 'absent'}:{files[1]}"}
        assert mgmt.config(None, None, env).server == "https://one:6443"  # first current wins
        picked = mgmt.config(None, "two", env)
        assert picked.server == "https://two:6443"
        merged = yaml.safe_load(mgmt._merge([files[0], files[1]]))
        # A relative certificate path still names the file next to its own kubeconfig.
        assert merged["clusters"][0]["cluster"]["certificate-authority"] == \
            str(files[0].parent.resolve() / "ca.crt")

    def test_home_default_and_missing(self, files: tuple[Path, Path], tmp_path: Path) -> None:
        home = tmp_path / "home"
        (home / ".kube").mkdir(parents=True)
        (home / ".kube" / "config").write_text(files[1].read_text())
        (home / ".kube" / "ca.crt").write_text("not used until TLS")
        assert mgmt.config(None, None, {"HOME": str(home)}).server == "https://two:6443"
        with pytest.raises(errors.NonRetriableError, match="does not exist"):
            mgmt.config(None, None, {"HOME": str(tmp_path / "nobody")})

    def test_flags_at_either_level(self) -> None:
        for argv in (["--context", "x", "status"], ["status", "--context", "x"]):
            args = cli.parser().parse_args(argv)
            assert args.context == "x" and not hasattr(args, "kubeconfig")
        with pytest.raises(errors.NonRetriableError, match=r"contexts: none"):
            kubeconfig.parse("contexts: []\n", context="nope")
