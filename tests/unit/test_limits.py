"""Status values are cut to their schema's limits, keeping the head and the tail."""

from __future__ import annotations

from engine.model import limits


class TestShorten:
    """One string, one limit."""

    def test_a_string_that_fits_is_unchanged(self) -> None:
        assert limits.shorten("short", 5) == "short"

    def test_a_long_string_keeps_head_and_tail_and_says_how_much_was_cut(self) -> None:
        text = "HEAD" + "x" * 5000 + "TAIL"
        out = limits.shorten(text, 100)
        assert len(out) <= 100
        assert out.startswith("HEAD") and out.endswith("TAIL")
        cut = int(out.split("…[")[1].split(" characters")[0])
        assert len(out) - len(limits.MARKER.format(cut=cut)) + cut == len(text)

    def test_a_limit_smaller_than_the_marker_falls_back_to_the_head(self) -> None:
        assert limits.shorten("abcdefghij" * 10, 8) == "abcdefgh"


class TestFitStatus:
    """Every string of a status fits the CRD schema the API server enforces."""

    def test_summary_message_conditions_and_service_rows(self) -> None:
        huge = "E" * 50_000 + " cause"
        status = {
            "phase": "Failed",
            "message": huge,
            "conditions": [{"type": "Ready", "status": "False", "reason": "X", "message": huge}],
            "services": [{"name": "a", "status": "Failed", "message": huge}],
            "inventory": [{"key": ["helm", "ns", "a"], "hash": "h"}],
        }
        out = limits.fit_status("ClusterSummary", status)
        assert len(out["message"]) <= 1024 and out["message"].endswith(" cause")
        assert len(out["conditions"][0]["message"]) <= 32768
        assert len(out["services"][0]["message"]) <= 32768
        assert out["inventory"] == status["inventory"]
        assert out["phase"] == "Failed"

    def test_profile_and_cluster_statuses_are_described_too(self) -> None:
        for kind in ("ClusterProfile", "Profile", "WorkloadCluster"):
            out = limits.fit_status(kind, {"conditions": [
                {"type": "Ready", "status": "False", "message": "m" * 40_000}]})
            assert len(out["conditions"][0]["message"]) <= 32768, kind

    def test_unknown_kinds_and_unknown_fields_pass_through(self) -> None:
        value = {"anything": "y" * 5000}
        assert limits.fit_status("Secret", value) == value
        assert limits.fit_status("ClusterSummary", value) == value
