"""How `flotilla catalog lint` reads a chart's files (no helm, no network).

Subcharts come as folders or as packaged .tgz files under charts/, and a
dependency alias decides the key their values live under.
"""

from __future__ import annotations

import io
import tarfile

from engine import catalog_lint
from engine.catalog_lint_run import chart_from_files


def package(top: str, files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(f"{top}/{path}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def test_subcharts_from_folders_and_archives_under_their_aliases() -> None:
    files = {
        "Chart.yaml": b"name: gpu-operator\nversion: v26.3.3\ndependencies:\n"
                      b"- {name: node-feature-discovery, alias: nfd}\n",
        "values.yaml": b"nfd: {enabled: true}\n",
        "templates/operator.yaml": b"{{ .Values.operator.image }}",
        "charts/node-feature-discovery/Chart.yaml": b"name: node-feature-discovery\nversion: 1\n",
        "charts/node-feature-discovery/values.yaml": b"worker: {tolerations: []}\n",
        "charts/grafana-12.4.5.tgz": package("grafana", {
            "Chart.yaml": "name: grafana\nversion: 12.4.5\n",
            "values.yaml": "adminUser: admin\n",
            "values.schema.json": '{"type": "object"}',
            "templates/x.yaml": "{{ .Values.persistence.enabled }}",
            "README.md": "not read",
        }),
    }
    info = chart_from_files(files, name="gpu-operator")
    assert (info.name, info.version) == ("gpu-operator", "v26.3.3")
    assert sorted(info.subcharts) == ["grafana", "nfd"]
    assert info.subcharts["grafana"].schema == {"type": "object"}
    assert list(info.subcharts["grafana"].templates) == ["templates/x.yaml"]
    defaults = catalog_lint.effective_defaults(info)
    assert defaults["nfd"] == {"enabled": True, "worker": {"tolerations": []}}
    assert defaults["grafana"] == {"adminUser": "admin"}
    assert ("grafana", "persistence", "enabled") in catalog_lint.template_reads(info)


def test_a_bare_equals_sign_is_a_string_as_in_go_yaml() -> None:
    # The Prometheus Operator CRDs list "=" among an enum's values; PyYAML's safe
    # loader would stop on it with "could not determine a constructor".
    info = chart_from_files({"Chart.yaml": b"name: x\nversion: 1\n",
                             "values.yaml": b"operators: [=, '!=']\n"}, name="x")
    assert info.values == {"operators": ["=", "!="]}
