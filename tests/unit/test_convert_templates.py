"""Unit tests for engine.convert.jinja: Sveltos Go templates become Flotilla's Jinja2.

Each translation is rendered by Flotilla's own renderer (engine.render, the
sandbox the controller uses) over a WorkloadCluster-shaped `cluster`, and
compared with what Go's text/template + sprig print for the same data.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine import render
from engine.convert import gotemplate, jinja
from engine.convert.report import Level, Report

CLUSTER = {
    "apiVersion": "flotilla.dev/v1alpha1",
    "kind": "WorkloadCluster",
    "metadata": {"name": "edge-7", "namespace": "fleet",
                 "labels": {"env": "prod", "region": "eu-west", "zone": ""},
                 "annotations": {"owner": "team-a"}},
    "spec": {"kubeconfigSecretRef": {"name": "edge-7-kubeconfig", "key": "kubeconfig"}},
    "status": {"version": "v1.37.2", "facts": {"nodes": 3, "gpus": {"H100": 8}}},
}
RESOURCES = {"settings": {"data": {"level": "debug", "size": "3"}},
             "sizes": {"items": ["small", "large"]}}


def _render(template: str) -> str:
    result = jinja.translate(template)
    assert result.complete, result.problems
    context: dict[str, Any] = {"cluster": CLUSTER, "getResource": RESOURCES.__getitem__}
    out = render.template_values(result.text, context)
    assert isinstance(out, str)
    return out


class TestExpressions:
    """Fields, functions and pipelines print what Go would print."""

    @pytest.mark.parametrize(("go", "printed"), [
        ("{{ .Cluster.metadata.name }}", "edge-7"),
        ("{{ .Cluster.metadata.labels.region }}", "eu-west"),
        ('{{ index .Cluster.metadata.labels "region" }}', "eu-west"),
        ('{{ index .Cluster.metadata.labels "gpu" | default "none" }}', "none"),
        ('{{ default "west" .Cluster.metadata.labels.zone }}', "west"),
        ('{{ .Cluster.metadata.name | quote }}', '"edge-7"'),
        ('{{ .Cluster.metadata.name | squote }}', "'edge-7'"),
        ('{{ .Cluster.metadata.name | upper }}', "EDGE-7"),
        ('{{ upper .Cluster.metadata.name | lower }}', "edge-7"),
        ('{{ "  x  " | trim }}', "x"),
        ('{{ (getResource "settings").data.level }}', "debug"),
        ('{{ index .MgmtResources "settings" "data" "size" }}', "3"),
        ('{{ printf "%s-%v" .Cluster.metadata.namespace .Cluster.metadata.name }}',
         "fleet-edge-7"),
        ('{{ len .Cluster.metadata.labels }}', "3"),
        ('{{ if eq .Cluster.metadata.labels.env "prod" }}yes{{ end }}', "yes"),
        ('{{ if and (ne .Cluster.metadata.labels.env "dev") (not .Cluster.metadata.labels.zone)'
         ' }}ok{{ end }}', "ok"),
        ('{{ trimSuffix "-7" .Cluster.metadata.name }}', "edge"),
        ('{{ hasPrefix "edge" .Cluster.metadata.name }}', "True"),
        ('{{ replace "-" "_" .Cluster.metadata.name }}', "edge_7"),
        ('{{ join "," (getResource "sizes").items }}', "small,large"),
        ('{{ ternary "big" "small" (gt (len .Cluster.metadata.labels) 2) }}', "big"),
        ('{{ $.Cluster.metadata.name }}', "edge-7"),
        ('{{ get .Cluster.metadata.annotations "none" }}|{{ get .Cluster.metadata.annotations '
         '"owner" }}', "|team-a"),
        ("{{ `raw {{ text` }}", "raw {{ text"),
        ('{{ "a\\tb" }}', "a\tb"),
    ])
    def test_prints_like_go(self, go: str, printed: str) -> None:
        assert _render(go) == printed

    def test_to_yaml_reads_back_as_the_same_value(self) -> None:
        text = _render("labels:{{ toYaml .Cluster.metadata.labels | nindent 2 }}\n")
        assert render.template_yaml(text, {}) == {"labels": CLUSTER["metadata"]["labels"]}

    def test_quote_keeps_special_characters_yaml_safe(self) -> None:
        text = _render('v: {{ "a: <b> & \\"c\\"" | quote }}')
        assert render.template_yaml(text, {}) == {"v": 'a: <b> & "c"'}

    def test_a_field_named_like_a_dict_method_reads_the_field(self) -> None:
        assert jinja.translate("{{ .Cluster.spec.items }}").text == \
            '{{ cluster.spec["items"] }}'


class TestControl:
    """if/else, range, with and variables keep Go's meaning."""

    def test_if_else_if_else_with_trim_markers(self) -> None:
        go = ('a:\n{{- if eq .Cluster.metadata.labels.env "dev" }} 1\n'
              '{{- else if eq .Cluster.metadata.labels.env "prod" }} 2\n'
              '{{- else }} 3\n{{- end }}\n')
        assert _render(go) == "a: 2\n"

    def test_range_over_a_map_is_in_key_order_with_key_and_value(self) -> None:
        go = "{{ range $k, $v := .Cluster.metadata.labels }}{{ $k }}={{ $v }};{{ end }}"
        assert _render(go) == "env=prod;region=eu-west;zone=;"

    def test_range_over_a_map_without_variables_yields_values(self) -> None:
        assert _render("{{ range .Cluster.metadata.annotations }}[{{ . }}]{{ end }}") == \
            "[team-a]"

    def test_range_over_a_list_with_index(self) -> None:
        go = '{{ range $i, $s := (getResource "sizes").items }}{{ $i }}:{{ $s }} {{ end }}'
        assert _render(go) == "0:small 1:large "

    def test_range_else_runs_on_an_empty_collection(self) -> None:
        assert _render("{{ range .Cluster.spec.none }}x{{ else }}empty{{ end }}".replace(
            ".Cluster.spec.none", '(getResource "sizes").none | default list')) == "empty"

    def test_with_rebinds_the_dot_and_else_sees_the_outer_one(self) -> None:
        go = ("{{ with .Cluster.metadata.annotations }}{{ .owner }}{{ end }}/"
              "{{ with .Cluster.metadata.labels.zone }}{{ . }}{{ else }}"
              "{{ .Cluster.metadata.name }}{{ end }}")
        assert _render(go) == "team-a/edge-7"

    def test_missing_keys_are_false_and_empty_as_in_go(self) -> None:
        go = ("{{ if .Cluster.metadata.labels.gpu }}gpu{{ else }}cpu{{ end }}/"
              "{{ with .Cluster.metadata.labels.gpu }}{{ . }}{{ else }}none{{ end }}/"
              "{{ range .Cluster.metadata.labels.gpu }}x{{ end }}.")
        assert _render(go) == "cpu/none/."

    def test_variables(self) -> None:
        go = '{{ $name := .Cluster.metadata.name }}{{ $name }}-{{ $name | upper }}'
        assert _render(go) == "edge-7-EDGE-7"

    def test_comments_vanish(self) -> None:
        assert _render("a{{/* why */}}b{{- /* trimmed */ -}} c") == "abc"


class TestWhatIsKept:
    """What cannot be translated stays as written, reported with its text and place."""

    def test_unknown_function_is_kept_and_located(self) -> None:
        result = jinja.translate("a: 1\nb: {{ .Cluster.metadata.name | sha256sum }}\n")
        assert not result.complete
        assert "{{ .Cluster.metadata.name | sha256sum }}" in result.text
        [problem] = result.problems
        assert (problem.line, problem.column, problem.kept) == (2, 4, True)
        assert "sha256sum" in problem.message

    def test_block_whose_opener_is_kept_keeps_its_end(self) -> None:
        result = jinja.translate("{{ range .Values.x }}{{ .Cluster.metadata.name }}{{ end }}")
        assert result.text.startswith("{{ range .Values.x }}")
        assert result.text.endswith("{{ end }}")
        assert "{% endfor %}" not in result.text

    @pytest.mark.parametrize("go", [
        '{{ template "x" . }}', "{{ define \"x\" }}a{{ end }}", "{{ .Values.replicas }}",
        "{{ . }}", '{{ setField (getResource "settings") "a" 1 }}', "{{ b64enc \"x\" }}",
        "{{ if .Cluster.metadata.name }}{{ break }}{{ end }}", "{{ .Cluster.metadata.name",
    ])
    def test_untranslatable_forms_are_reported(self, go: str) -> None:
        result = jinja.translate(go)
        assert not result.complete
        assert all(p.message for p in result.problems)

    def test_an_unreadable_action_does_not_stop_the_others(self) -> None:
        result = jinja.translate("{{ if 'c' }}a{{ end }}{{ .Cluster.metadata.name }}")
        assert result.text == "{{ if 'c' }}a{{ end }}{{ cluster.metadata.name }}"
        assert [p.column for p in result.problems] == [1, 14]

    def test_cluster_spec_is_translated_but_flagged(self) -> None:
        result = jinja.translate("{{ .Cluster.spec.topology.version }}")
        assert result.complete
        assert [p.kept for p in result.problems] == [False]
        assert "WorkloadCluster" in result.problems[0].message

    def test_literal_jinja_markers_in_text_stay_literal(self) -> None:
        assert _render("{% raw %} {# x #} {{ .Cluster.metadata.name }}") == \
            "{% raw %} {# x #} edge-7"

    def test_text_without_actions_is_unchanged(self) -> None:
        text = "replicas: 2\nname: plain\n"
        assert jinja.translate(text).text == text


class TestReporting:
    """Findings carry the field path; Secret text never appears in them."""

    def test_findings_name_path_line_and_text(self) -> None:
        report = Report(document="ClusterProfile/x")
        jinja.translate_into("a: {{ now }}", "spec.helmCharts[0].values", report)
        [finding] = report.findings
        assert finding.level is Level.DROPPED
        assert finding.path == "spec.helmCharts[0].values (line 1, column 4)"
        assert "{{ now }}" in finding.message

    def test_a_multi_line_action_is_quoted_on_one_line(self) -> None:
        report = Report(document="ClusterProfile/x")
        jinja.translate_into("{{ now\n }}", "spec.patches[0].patch", report)
        assert ["\n" in f.line() for f in report.findings] == [False]
        assert "{{ now\\n }}" in report.findings[0].line()

    def test_secret_text_is_not_quoted(self) -> None:
        report = Report(document="Secret/default/s")
        jinja.translate_into("password: {{ hunter2secret }}", "data.x", report, secret=True)
        assert report.findings
        assert all("hunter2secret" not in f.line() for f in report.findings)


class TestParser:
    """The Go action parser reads pipelines the way text/template does."""

    def test_pipeline_passes_the_value_as_last_argument(self) -> None:
        action = gotemplate.parse_action('{{ .A | default "x" | quote }}', 0)
        assert action.pipeline is not None
        assert [type(c.args[0]).__name__ for c in action.pipeline.commands] == \
            ["Field", "Identifier", "Identifier"]

    def test_declarations_and_trim_markers(self) -> None:
        action = gotemplate.parse_action("{{- range $k, $v := .M -}}", 0)
        assert (action.keyword, action.trim_left, action.trim_right) == ("range", True, True)
        assert action.pipeline is not None and action.pipeline.declare == ("$k", "$v")

    def test_closing_braces_inside_strings_do_not_end_the_action(self) -> None:
        pieces = gotemplate.split('a{{ "}}" }}b')
        assert pieces[0] == "a" and pieces[2] == "b"
        assert isinstance(pieces[1], gotemplate.Action)
