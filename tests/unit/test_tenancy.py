"""engine.tenancy: namespace annotations become limits; a Profile past them is refused."""

from __future__ import annotations

import pytest

from engine import errors, tenancy
from engine.model import types


def _ns(**notes: str) -> dict[str, object]:
    return {"metadata": {"name": "team-a", "annotations": notes}}


class TestLimits:
    """Annotations on the Namespace set the limits; none set none."""

    def test_defaults(self) -> None:
        limits = tenancy.limits_of("team-a", None)
        assert limits.min_tier is None and not limits.allow_cluster_scoped

    def test_annotations(self) -> None:
        limits = tenancy.limits_of("team-a", _ns(**{tenancy.MIN_TIER_ANNOTATION: "50",
                                                   tenancy.ALLOW_CLUSTER_SCOPED_ANNOTATION:
                                                   "True"}))
        assert limits.min_tier == 50 and limits.allow_cluster_scoped

    def test_a_typo_does_not_lift_the_floor(self) -> None:
        with pytest.raises(errors.SpecError) as caught:
            tenancy.limits_of("team-a", _ns(**{tenancy.MIN_TIER_ANNOTATION: "fifty"}))
        assert caught.value.field == "spec.tier"


class TestCheckProfile:
    """Cross-namespace clusterRefs and tiers below the floor are refused, naming the field."""

    def test_cross_namespace_ref(self) -> None:
        spec = types.ProfileSpec.from_dict({"clusterRefs": [
            {"namespace": "team-a", "name": "ok"}, {"namespace": "team-b", "name": "x"}]})
        with pytest.raises(errors.SpecError) as caught:
            tenancy.check_profile(spec, tenancy.Limits("team-a"))
        assert caught.value.field == "spec.clusterRefs[1].namespace"
        assert caught.value.reason == "CrossNamespaceRef"

    def test_tier_floor(self) -> None:
        limits = tenancy.Limits("team-a", min_tier=100)
        tenancy.check_profile(types.ProfileSpec.from_dict({"tier": 100}), limits)
        with pytest.raises(errors.SpecError) as caught:
            tenancy.check_profile(types.ProfileSpec.from_dict({"tier": 99}), limits)
        assert caught.value.reason == "TierAboveLimit" and caught.value.field == "spec.tier"

    def test_cluster_scoped(self) -> None:
        found = [("rbac.authorization.k8s.io/v1", "ClusterRole", "r")]
        tenancy.cluster_scoped_refusal(found, tenancy.Limits("a", allow_cluster_scoped=True),
                                       field="spec.policyRefs")
        tenancy.cluster_scoped_refusal([], tenancy.Limits("a"), field="spec.policyRefs")
        with pytest.raises(errors.SpecError) as caught:
            tenancy.cluster_scoped_refusal(found, tenancy.Limits("a"), field="spec.policyRefs")
        assert "ClusterRole r" in str(caught.value) and caught.value.field == "spec.policyRefs"

