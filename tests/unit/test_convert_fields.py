"""Unit tests for engine.convert.fields: the mapping table keeps up with our CRDs and docs.

When a field is added to a CRD in crds/ (say `patches`), the first test fails
until the table says which Sveltos field feeds it (or that it is ours alone);
docs/sveltos.md must list every Sveltos field the table knows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.convert import fields, functions, profiles, schema
from engine.convert.fields import Action

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "sveltos.md"


def _spec_fields(crd_file: str) -> set[str]:
    crd: dict[str, Any] = yaml.safe_load((ROOT / "crds" / crd_file).read_text())
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return set(root["properties"]["spec"]["properties"])


class TestTableCoversTheCRDs:
    """Every top-level spec field our CRDs accept is fed by the table or ours alone."""

    @pytest.mark.parametrize("crd_file", ["flotilla.dev_clusterprofiles.yaml",
                                          "flotilla.dev_profiles.yaml"])
    def test_profile_fields(self, crd_file: str) -> None:
        known = fields.targets(fields.PROFILE_SPEC) | fields.PROFILE_OURS
        assert _spec_fields(crd_file) - known == set()

    def test_workload_cluster_fields(self) -> None:
        known = fields.targets(fields.CLUSTER_SPEC) | fields.CLUSTER_OURS
        assert _spec_fields("flotilla.dev_workloadclusters.yaml") - known == set()

    def test_ours_alone_are_not_sveltos_fields(self) -> None:
        assert fields.PROFILE_OURS.isdisjoint(fields.PROFILE_SPEC)


class TestTableIsConsistent:
    """Each rule can be carried out."""

    def test_every_convert_rule_has_its_converter(self) -> None:
        wanted = {name for name, rule in fields.PROFILE_SPEC.items()
                  if rule.action is Action.CONVERT}
        assert wanted == set(profiles.CONVERTERS)

    def test_every_rule_but_pass_says_how(self) -> None:
        for table in (fields.PROFILE_SPEC, fields.CLUSTER_SPEC):
            for name, rule in table.items():
                assert rule.action is Action.PASS or rule.how, name


class TestDocs:
    """docs/sveltos.md lists every Sveltos field and every translated function."""

    @pytest.mark.parametrize("table", ["PROFILE_SPEC", "CLUSTER_SPEC"])
    def test_compatibility_table_lists_every_field(self, table: str) -> None:
        rows = {line.split("|")[1].strip().strip("`") for line in DOCS.read_text().splitlines()
                if line.startswith("| `")}
        assert set(getattr(fields, table)) - rows == set()

    def test_status_says_whether_flotilla_acts_on_the_field(self) -> None:
        ours = schema.properties(schema.spec_schema("ClusterProfile"))
        rows = [line.split("|") for line in DOCS.read_text().splitlines()
                if line.startswith("| `")]
        checked = 0
        for row in rows:
            name, status = row[1].strip().strip("`"), row[2].strip()
            rule = fields.PROFILE_SPEC.get(name)
            if rule is None:
                continue
            target = rule.to or name
            carried = rule.action is not Action.UNSUPPORTED and target in ours
            acted_on = carried and not schema.unhonoured(ours[target])
            assert status.startswith("not supported") == (not acted_on), name
            checked += 1
        assert checked == len(fields.PROFILE_SPEC)

    def test_every_translated_function_is_documented(self) -> None:
        text = DOCS.read_text()
        assert [name for name in functions.names() if f"`{name}`" not in text] == []


def _proved_by(cell: str) -> list[tuple[str, list[str]]]:
    """`file::Class::test; ::Class::test, words: file.py` → (file, names) per reference; a
    reference starting with `::` is in the file named before it."""
    refs: list[tuple[str, list[str]]] = []
    last = ""
    for word in cell.replace(";", " ").replace(",", " ").split():
        word = word.strip("`()")
        if "::" not in word and not word.endswith(".py"):
            continue
        path, _, rest = word.partition("::")
        last = path or last
        refs.append((last, [n for n in rest.split("::") if n]))
    return refs


class TestProvedBy:
    """Every supported row of docs/sveltos.md's tables names tests, and they exist."""

    def test_every_supported_row_names_existing_tests(self) -> None:
        rows, proving = [], False
        for line in DOCS.read_text().splitlines():
            proving = line.startswith("|") and (proving or "| proved by |" in line)
            if proving and line.startswith("| `"):
                rows.append([c.strip() for c in line.split("|")[1:-1]])
        checked = 0
        for row in rows:
            assert len(row) == 4, row
            if row[1].startswith("not supported") and "accepted" not in row[1]:
                continue
            refs = _proved_by(row[3])
            assert refs, f"{row[0]}: names no test"
            for path, names in refs:
                source = (ROOT / path).read_text()
                for name in names:
                    assert re.search(rf"^\s*(def|class) {re.escape(name)}\b", source, re.M), \
                        f"{row[0]}: {path} has no {name}"
            checked += 1
        assert checked >= 35
