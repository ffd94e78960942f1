import shutil

import pytest
import yaml

from accompgen.core.bundle import MANIFEST, BundleError, load_bundle


@pytest.fixture
def bundle(tiny_bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    return copy


def edit_manifest(bundle, change):
    data = yaml.safe_load((bundle / MANIFEST).read_text())
    change(data)
    (bundle / MANIFEST).write_text(yaml.safe_dump(data))


def test_a_written_bundle_loads_and_round_trips(bundle):
    manifest = load_bundle(bundle)
    assert manifest.model == "tiny" and manifest.precision == "fp32"
    assert set(manifest.graphs()) == {
        "semantic_encoder",
        "stage_semantic",
        "stage_coarse",
        "stage_fine",
        "codec_decoder",
    }
    assert type(manifest).from_dict(manifest.to_dict()) == manifest


def test_a_corrupted_graph_fails_its_hash(bundle):
    path = bundle / "stage_coarse.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"stage_coarse.onnx does not match its sha256"):
        load_bundle(bundle)


def test_a_truncated_graph_fails_its_hash(bundle):
    path = bundle / "codec_decoder.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(BundleError, match=r"codec_decoder\.onnx does not match"):
        load_bundle(bundle)


def test_a_missing_graph_is_named(bundle):
    (bundle / "stage_fine.onnx").unlink()
    with pytest.raises(BundleError, match=r"lacks stage_fine.onnx \(graph stage_fine\)"):
        load_bundle(bundle)


@pytest.mark.parametrize(
    ("remove", "key"),
    [
        (lambda d: d["graphs"]["stage_fine"].pop("sha256"), "graphs.stage_fine.sha256"),
        (lambda d: d["audio"].pop("codec_hop"), "audio.codec_hop"),
        (lambda d: d.pop("sampling"), "sampling"),
    ],
)
def test_a_missing_manifest_key_is_named_by_its_path(bundle, remove, key):
    edit_manifest(bundle, remove)
    with pytest.raises(BundleError, match=f"lacks the key {key}"):
        load_bundle(bundle)


def test_a_manifest_from_another_format_version_is_refused(bundle):
    edit_manifest(bundle, lambda d: d.update(format_version=99))
    with pytest.raises(BundleError, match="format_version 99"):
        load_bundle(bundle)


def test_a_directory_without_a_manifest_is_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match=r"holds no manifest\.yaml"):
        load_bundle(tmp_path)


def test_a_manifest_that_is_not_yaml_is_refused(bundle):
    (bundle / MANIFEST).write_text("graphs: [unclosed")
    with pytest.raises(BundleError, match="not valid YAML"):
        load_bundle(bundle)
