"""Writes that never lose data: a file is replaced whole or not at all."""

import os

import pytest

from aocr.core.files import link_or_copy, write_bytes_atomic
from aocr.export.export import replace_directory


def test_link_or_copy_replaces_the_target_with_the_sources_bytes(tmp_path):
    source, target = tmp_path / "model.ckpt-200.index", tmp_path / "best.index"
    source.write_bytes(b"new")
    target.write_bytes(b"old")
    link_or_copy(str(source), str(target))
    assert target.read_bytes() == b"new" and os.path.samefile(source, target)  # a hard link: no bytes copied
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.index", "model.ckpt-200.index"]


def test_a_failed_link_or_copy_leaves_the_target_as_it_was(tmp_path):
    target = tmp_path / "best.index"
    target.write_bytes(b"old")
    with pytest.raises(Exception):  # noqa: B017 (TensorFlow's NotFoundError or an OSError, by file system)
        link_or_copy(str(tmp_path / "vanished.index"), str(target))
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["best.index"]  # no temporary file left behind


def test_replacing_an_export_version_keeps_the_old_one_until_the_new_one_is_in_place(tmp_path):
    old, new = tmp_path / "1", tmp_path / ".1.tmp-build"
    old.mkdir()
    (old / "saved_model.pb").write_bytes(b"old")
    new.mkdir()
    (new / "saved_model.pb").write_bytes(b"new")
    replace_directory(str(new), str(old))
    assert (old / "saved_model.pb").read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["1"]
    with pytest.raises(Exception):  # noqa: B017 (TensorFlow's NotFoundError: the new build vanished)
        replace_directory(str(tmp_path / ".1.tmp-gone"), str(old))
    assert (old / "saved_model.pb").read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["1"]


def test_an_atomic_write_reaches_the_disk_before_it_replaces_the_old_file(tmp_path, monkeypatch):
    """The new bytes are flushed before the rename and the rename itself after it, so a power cut leaves the
    old file or the whole new one, never a name pointing at bytes that were not written."""
    synced = []
    real_fsync = os.fsync

    def fsync(descriptor):
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    target = tmp_path / "params.json"
    target.write_bytes(b"old")
    write_bytes_atomic(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert len(synced) == 2 and ".params.json.tmp-" in synced[0], synced  # the new bytes, under their temporary name
    assert synced[1] == str(tmp_path)  # then the directory, whose entry the rename changed
