"""profiles.dependency_cycle: dependsOn paths that lead back to the profile."""

from __future__ import annotations


class TestDependencyCycle:
    """A profile that depends on itself, directly or through others, is a cycle."""

    def test_cycles(self) -> None:
        from engine.controller import profiles

        graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["e"], "e": [], "s": ["s"]}
        assert profiles.dependency_cycle("a", lambda n: graph.get(n, [])) == ["a", "b", "c", "a"]
        assert profiles.dependency_cycle("s", lambda n: graph.get(n, [])) == ["s", "s"]
        assert profiles.dependency_cycle("d", lambda n: graph.get(n, [])) == []
