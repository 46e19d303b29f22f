"""Unit tests for engine.labels: Kubernetes label-selector semantics and kubectl syntax."""

from __future__ import annotations

import pytest

from engine import labels
from engine.labels import Requirement
from engine.model import types

LABELS = {"gpu": "nvidia", "region": "eu", "ring": "a"}


class TestMatches:
    """Every matchLabels pair and every requirement must hold; nothing required matches all."""

    @pytest.mark.parametrize(
        ("requirement", "expected"),
        [
            (Requirement("region", "In", ("eu", "us")), True),
            (Requirement("region", "In", ("us",)), False),
            (Requirement("zone", "In", ("a",)), False),
            (Requirement("region", "NotIn", ("us",)), True),
            (Requirement("region", "NotIn", ("eu",)), False),
            # As in Kubernetes, a missing label is "not in" any set.
            (Requirement("zone", "NotIn", ("a",)), True),
            (Requirement("gpu", "Exists"), True),
            (Requirement("zone", "Exists"), False),
            (Requirement("zone", "DoesNotExist"), True),
            (Requirement("gpu", "DoesNotExist"), False),
        ],
    )
    def test_requirements(self, requirement: Requirement, expected: bool) -> None:
        assert labels.holds(requirement, LABELS) is expected
        assert labels.matches(LABELS, match_expressions=[requirement]) is expected

    @pytest.mark.parametrize(
        ("match_labels", "expected"),
        [({"gpu": "nvidia"}, True), ({"gpu": "amd"}, False), ({"gpu": "nvidia", "x": "y"}, False)],
    )
    def test_match_labels(self, match_labels: dict[str, str], expected: bool) -> None:
        assert labels.matches(LABELS, match_labels=match_labels) is expected

    def test_both_must_hold(self) -> None:
        assert not labels.matches(LABELS, match_labels={"gpu": "nvidia"},
                                  match_expressions=[Requirement("region", "In", ("us",))])

    def test_nothing_required_matches_everything(self) -> None:
        assert labels.matches(LABELS)
        assert labels.matches(None, match_labels={})
        assert not labels.matches(None, match_labels={"a": "b"})

    def test_the_typed_model_is_an_expression_too(self) -> None:
        selector = types.LabelSelector.from_dict(
            {"matchExpressions": [{"key": "region", "operator": "NotIn", "values": ["us"]}]})
        assert labels.matches(LABELS, match_expressions=selector.match_expressions)

    def test_unknown_operator(self) -> None:
        with pytest.raises(ValueError, match="Near"):
            labels.holds(Requirement("a", "Near"), LABELS)  # type: ignore[arg-type]


class TestParse:
    """kubectl's equality-based syntax; set-based selectors are left unparsed."""

    def test_every_form(self) -> None:
        assert labels.parse("a=1, b!=2, c, !d, e==5") == (
            Requirement("a", "In", ("1",)),
            Requirement("b", "NotIn", ("2",)),
            Requirement("c", "Exists"),
            Requirement("d", "DoesNotExist"),
            Requirement("e", "In", ("5",)),
        )

    @pytest.mark.parametrize(
        ("text", "present", "expected"),
        [
            ("a=1, b!=2, c, !d", {"a": "1", "c": ""}, True),
            ("a=1, b!=2, c, !d", {"a": "1", "c": "", "d": ""}, False),
            ("a=1, b!=2, c, !d", {"a": "1", "b": "2", "c": ""}, False),
            ("b!=2", {}, True),  # != selects objects without the label, as kubectl does
            ("", {}, True),
        ],
    )
    def test_matching(self, text: str, present: dict[str, str], expected: bool) -> None:
        requirements = labels.parse(text)
        assert requirements is not None
        assert labels.matches(present, match_expressions=requirements) is expected

    def test_set_based_is_not_parsed(self) -> None:
        assert labels.parse("tier in (a, b)") is None


class TestParseSelector:
    """kubectl's whole selector syntax, set-based requirements included (patch targets)."""

    def test_every_form(self) -> None:
        assert labels.parse_selector("a=b, c!=d,e in (x, y),f notin (z),g,!h,i==j") == (
            Requirement("a", "In", ("b",)), Requirement("c", "NotIn", ("d",)),
            Requirement("e", "In", ("x", "y")), Requirement("f", "NotIn", ("z",)),
            Requirement("g", "Exists"), Requirement("h", "DoesNotExist"),
            Requirement("i", "In", ("j",)))

    def test_empty_requires_nothing(self) -> None:
        assert labels.parse_selector("  ") == ()

    @pytest.mark.parametrize("text", ["a in x", "!a=b", "a=b=c", "a in (x"])
    def test_unreadable_parts_are_named(self, text: str) -> None:
        with pytest.raises(ValueError, match="cannot parse"):
            labels.parse_selector(text)
