"""utils.fileio: atomic writes with the umask's mode, sets written together, stale temps."""
import errno
import os
import pathlib

import pytest

from utils import fileio
from utils.errors import DiskWriteError


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_atomic_write_mode_follows_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        fileio.atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == mode
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_write_set_failure_changes_nothing(tmp_path):
    (tmp_path / "a.csv").write_text("old")

    def broken(tmp):
        pathlib.Path(tmp).write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device", tmp)

    with pytest.raises(DiskWriteError, match=r"cannot write .*b\.jsonl .*no space left.* free"):
        fileio.write_set([fileio.text_item(tmp_path / "a.csv", "new"),
                          fileio.file_item(tmp_path / "b.jsonl", broken)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]
    assert (tmp_path / "a.csv").read_text() == "old"
    fileio.write_set([fileio.text_item(tmp_path / "a.csv", "new"),
                      fileio.text_item(tmp_path / "b.jsonl", "new")])
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.jsonl").read_text() == "new"


def test_remove_stale_temps(tmp_path):
    stale = [".model.001.weights.h5.ab12cd34.tmp.weights.h5", ".history.csv.x9y8z7.tmp",
             ".state.001.a1b2c3d4.tmp.index", ".state.001.a1b2c3d4.tmp_temp"]
    keep = ["model.001.weights.h5", ".hidden", "notes.tmp.txt"]
    for name in stale + keep:
        (tmp_path / name).write_text("x")
    removed = fileio.remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


def test_results_pair_unchanged_when_the_disk_is_full(tmp_path, monkeypatch):
    """JSONL + CSV are written together: ENOSPC on either leaves both as they were, so a
    rerun does not duplicate a record (issue 16)."""
    from utils.results import append_records, read_records

    path = tmp_path / "res.jsonl"
    append_records(path, [{"a": 1}])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = fileio.finish_temp

    def full(tmp):
        if tmp.name.startswith(".res.jsonl."):
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        real(tmp)

    monkeypatch.setattr(fileio, "finish_temp", full)
    with pytest.raises(DiskWriteError, match=r"res\.jsonl .*no space left"):
        append_records(path, [{"a": 2}])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    monkeypatch.setattr(fileio, "finish_temp", real)
    append_records(path, [{"a": 2}])
    assert [r["a"] for r in read_records(path)] == [1, 2]
    assert path.with_suffix(".csv").read_text().splitlines() == ["a", "1", "2"]
