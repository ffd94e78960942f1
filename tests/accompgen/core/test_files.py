"""Files written whole or not at all."""

import os
import stat

import pytest

from accompgen.core.files import write_atomic, write_text_atomic


def test_a_written_file_holds_the_new_text_and_nothing_is_left_beside_it(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old")
    write_text_atomic(path, "new")
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_write_that_fails_leaves_the_old_file_whole_and_no_partial_file(tmp_path):
    path = tmp_path / "shard.npz"
    path.write_bytes(b"old")

    def fail(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, fail)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["shard.npz"]


def test_a_written_file_gets_the_permissions_a_plain_write_gives(tmp_path):
    """Users share run folders and bundles: an atomic write must not make them private to one account."""
    plain, atomic = tmp_path / "plain.txt", tmp_path / "atomic.txt"
    plain.write_text("x")
    write_text_atomic(atomic, "x")
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_a_private_file_is_readable_by_its_user_only(tmp_path):
    """The bridge's address file holds the key that lets a local client in."""
    path = tmp_path / "bridge.json"
    write_text_atomic(path, "{}", private=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
