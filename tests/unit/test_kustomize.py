"""kustomizationRefs on plain data: unpacking, the build directory, inventory keys, schema."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import tarfile
from pathlib import Path

import pytest
import yaml

from engine import errors, inventory, kustomize, snapshot, unsupported
from engine.adapters import kustomizebin
from engine.model import types

DEPLOY = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
KUST = "resources:\n- deploy.yaml\n"


def _tarball(files: dict[str, bytes], *, link: str = "") -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        if link:
            info = tarfile.TarInfo("evil")
            info.type = tarfile.SYMTYPE
            info.linkname = link
            tar.addfile(info)
    return base64.b64encode(buf.getvalue()).decode()


class TestTree:
    """A ConfigMap/Secret's data becomes the files kubectl kustomize reads."""

    def test_data_keys_are_files(self) -> None:
        got = kustomize.tree({"kustomization.yaml": KUST, "deploy.yaml": DEPLOY}, field="f")
        assert got == {"kustomization.yaml": KUST.encode(), "deploy.yaml": DEPLOY.encode()}

    def test_tarball_in_binary_data_is_unpacked(self) -> None:
        packed = _tarball({"./overlay/kustomization.yaml": KUST.encode(),
                           "overlay/deploy.yaml": DEPLOY.encode()})
        got = kustomize.tree({kustomize.BINARY_PREFIX + "k.tar.gz": packed}, field="f")
        assert sorted(got) == ["overlay/deploy.yaml", "overlay/kustomization.yaml"]

    @pytest.mark.parametrize("name", ["../escape.yaml", "/etc/passwd", "a/../../b"])
    def test_paths_outside_the_tree_are_refused(self, name: str) -> None:
        packed = _tarball({name: b"x"})
        with pytest.raises(errors.SpecError, match="not a relative path"):
            kustomize.tree({kustomize.BINARY_PREFIX + "k.tgz": packed}, field="f")

    def test_links_are_refused(self) -> None:
        packed = _tarball({"kustomization.yaml": KUST.encode()}, link="/etc/passwd")
        with pytest.raises(errors.SpecError, match="not a regular file"):
            kustomize.tree({kustomize.BINARY_PREFIX + "k.tgz": packed}, field="f")

    def test_garbage_tarball_names_the_field(self) -> None:
        with pytest.raises(errors.SpecError) as caught:
            kustomize.tree({kustomize.BINARY_PREFIX + "k.tgz":
                            base64.b64encode(b"\x1f\x8bnot gzip").decode()},
                           field="spec.kustomizationRefs[0]")
        assert caught.value.field.startswith("spec.kustomizationRefs[0]")

    def test_empty_object_is_an_error(self) -> None:
        with pytest.raises(errors.SpecError, match="holds no files"):
            kustomize.tree({}, field="f")


class TestBuildDir:
    """path, targetNamespace and a generated kustomization.yaml."""

    def test_plain_yaml_gets_a_generated_kustomization(self) -> None:
        files, where = kustomize.build_dir({"deploy.yaml": b"x", "notes.txt": b"y"}, path="",
                                           target_namespace="", field="f")
        assert where == "."
        assert yaml.safe_load(files["kustomization.yaml"])["resources"] == ["deploy.yaml"]

    def test_target_namespace_wraps_the_path(self) -> None:
        files, where = kustomize.build_dir({"base/kustomization.yaml": b"x"}, path="/base/",
                                           target_namespace="apps", field="f")
        wrapper = yaml.safe_load(files[f"{where}/kustomization.yaml"])
        assert wrapper["namespace"] == "apps" and wrapper["resources"] == ["../src/base"]
        assert "src/base/kustomization.yaml" in files

    def test_missing_path_is_named(self) -> None:
        with pytest.raises(errors.SpecError, match=r"no kustomization\.yaml") as caught:
            kustomize.build_dir({"kustomization.yaml": b"x"}, path="nope",
                                target_namespace="", field="spec.kustomizationRefs[1]")
        assert caught.value.field == "spec.kustomizationRefs[1].path"

    def test_digest_follows_every_input(self) -> None:
        base = kustomize.digest({"a": "1"}, "", "")
        assert base != kustomize.digest({"a": "2"}, "", "")
        assert base != kustomize.digest({"a": "1"}, "p", "")
        assert base != kustomize.digest({"a": "1"}, "", "ns")


class TestInventory:
    """Kustomize keys are their own kind and survive the status round trip."""

    def test_key_kind_and_round_trip(self) -> None:
        item = inventory.DesiredItem.for_kustomized(yaml.safe_load(DEPLOY))
        assert inventory.kind_of(item.key) == inventory.KUSTOMIZE
        assert inventory.object_part(item.key) == ("apps", "v1", "Deployment", "", "web")
        row = inventory.InventoryEntry(key=item.key, hash=item.hash).to_dict()
        assert row["feature"] == "Kustomize" and row["kind"] == "Deployment"
        assert inventory.InventoryEntry.from_dict(row).key == item.key
        plain = inventory.InventoryEntry.from_dict({**row, "feature": ""})
        assert inventory.kind_of(plain.key) == inventory.OBJECT


class TestModel:
    """Sveltos' KustomizationRef shape; unsupported sources are named."""

    def test_fields(self) -> None:
        spec = types.ProfileSpec.from_dict({"kustomizationRefs": [
            {"kind": "Secret", "name": "k", "namespace": "d", "path": "overlays/prod",
             "targetNamespace": "apps", "values": {"Region": "{{ cluster.metadata.name }}"},
             "valuesFrom": [{"kind": "ConfigMap", "name": "v"}]}]})
        ref = spec.kustomization_refs[0]
        assert ref.supported and ref.path == "overlays/prod" and ref.target_namespace == "apps"
        assert ref.values["Region"].startswith("{{") and ref.values_from[0].name == "v"

    @pytest.mark.parametrize("ref,supported", [
        ({"kind": "GitRepository", "name": "g"}, False),
        ({"kind": "ConfigMap", "name": "c", "deploymentType": "Local"}, False),
        ({"kind": "ConfigMap", "name": "c"}, True)])
    def test_flux_sources_and_local_are_not_built(self, ref: dict[str, str],
                                                  supported: bool) -> None:
        spec = types.ProfileSpec.from_dict({"kustomizationRefs": [ref]})
        assert spec.kustomization_refs[0].supported is supported
        refs = snapshot.references(spec, profile_kind="ClusterProfile", profile_namespace="")
        assert bool(refs) is supported and all(r.binary for r in refs)
        found = unsupported.fields({"kustomizationRefs": [ref]})
        assert bool(found) is not supported
        assert all(f.startswith("spec.kustomizationRefs[0]") for f in found)

    def test_unknown_kind_is_refused(self) -> None:
        with pytest.raises(errors.SpecError):
            types.ProfileSpec.from_dict({"kustomizationRefs": [{"kind": "Pod", "name": "p"}]})


class TestKubectl:
    """The kubectl finder: FLOTILLA_KUBECTL, else PATH; a clear error otherwise."""

    def test_named_binary_must_be_executable(self, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
        monkeypatch.setenv(kustomizebin.ENV, str(tmp_path / "missing"))
        with pytest.raises(errors.NonRetriableError) as caught:
            kustomizebin.locate()
        assert caught.value.reason == "KubectlNotFound"

    def test_no_kubectl_on_path(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.delenv(kustomizebin.ENV, raising=False)
        monkeypatch.setenv("PATH", str(tmp_path))
        with pytest.raises(errors.NonRetriableError, match="install kubectl"):
            kustomizebin.locate()

    def test_build_with_the_real_kubectl(self) -> None:
        assert os.environ.get(kustomizebin.ENV)  # set by conftest's test_kubectl
        files, where = kustomize.build_dir(
            kustomize.tree({"kustomization.yaml": KUST + "namePrefix: p-\n",
                            "deploy.yaml": DEPLOY}, field="f"),
            path="", target_namespace="apps", field="f")
        text = asyncio.run(kustomizebin.build(files, where, digest="unit-test-1", field="f",
                                              secret=False))
        (obj,) = kustomize.objects(text, field="f")
        assert obj["metadata"] == {"name": "p-web", "namespace": "apps"}

    def test_failed_build_from_a_secret_withholds_output(self) -> None:
        files = {"kustomization.yaml": b"resources:\n- missing-secret-value.yaml\n"}
        with pytest.raises(errors.SpecError) as caught:
            asyncio.run(kustomizebin.build(files, ".", digest="unit-test-2", field="f",
                                           secret=True))
        assert caught.value.reason == "KustomizeFailed"
        assert "missing-secret-value" not in str(caught.value)
        with pytest.raises(errors.SpecError, match="missing-secret-value"):
            asyncio.run(kustomizebin.build(files, ".", digest="unit-test-3", field="f",
                                           secret=False))
