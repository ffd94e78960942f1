import pytest

import accompgen_export.bundle_writer as writer
from accompgen.core.bundle import load_bundle
from accompgen.core.errors import UserError


def test_a_non_bundle_directory_is_never_touched(tmp_path, tiny_parts):
    mine = tmp_path / "my-songs"
    mine.mkdir()
    (mine / "take1.wav").write_bytes(b"RIFF")
    with pytest.raises(UserError, match="not a bundle"):
        writer.write_bundle(tiny_parts, mine)
    assert (mine / "take1.wav").read_bytes() == b"RIFF"


def test_an_existing_bundle_needs_overwrite(tiny_bundle, tiny_parts):
    with pytest.raises(UserError, match="--overwrite"):
        writer.write_bundle(tiny_parts, tiny_bundle)


def test_a_failed_export_leaves_the_old_bundle_and_no_staging(tmp_path, tiny_bundle, tiny_parts, monkeypatch):
    import shutil

    out = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args, **kwargs):
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(writer, "export_stage", broken)
    with pytest.raises(RuntimeError, match="exporter crashed"):
        writer.write_bundle(tiny_parts, out, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    load_bundle(out)
