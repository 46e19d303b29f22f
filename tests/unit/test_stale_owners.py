"""Owner marks left by profiles that no longer exist are stale (the controller's cache decides)."""

from __future__ import annotations

from engine.controller import profiles, store


class TestStaleOwners:
    """An owner mark is stale only when it names a profile kind that is not in the cache."""

    def test_gone(self) -> None:
        cache = store.Store()
        cache.put("ClusterProfile", {"apiVersion": "flotilla.dev/v1alpha1",
                                     "kind": "ClusterProfile", "metadata": {"name": "here"}})
        assert not profiles.gone(cache, "ClusterProfile//here")
        assert profiles.gone(cache, "ClusterProfile//deleted")
        assert profiles.gone(cache, "Profile/team/deleted")
        assert not profiles.gone(cache, "Deployment/ns/x")
        assert not profiles.gone(cache, "garbage")
