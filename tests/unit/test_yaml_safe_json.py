"""kubehttp.yaml_safe_json: server-side apply bodies a YAML parser reads back unchanged."""

from __future__ import annotations

import json

import pytest
import yaml

from engine.adapters import kubehttp


@pytest.mark.parametrize("value", ["😀 astral", "日本語", "\x85nel", "\x7f\x9f", "\ufffe",
                                   "a\x00b", "\t\n\r", 'quote " and \\ backslash'])
def test_round_trips_through_yaml(value: str) -> None:
    text = kubehttp.yaml_safe_json({"data": {"k": value}})
    assert yaml.safe_load(text) == {"data": {"k": value}}
    assert json.loads(text) == {"data": {"k": value}}


def test_no_surrogate_escapes() -> None:
    # The regression: json.dumps wrote "\ud83d\ude00", which the API server's YAML refused.
    assert "\\ud83d" in json.dumps("😀")
    assert "\\ud83d" not in kubehttp.yaml_safe_json("😀")
