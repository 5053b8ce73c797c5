"""Atomic writes (smpl_jax/atomic_files.py): old target kept and no temporary left on a
failure mid-write, permissions from the umask, several files all or nothing."""

from __future__ import annotations

import os

import pytest

from smpl_jax import atomic_files


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def _mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_write_bytes_and_text_replace_the_target(tmp_path):
    path = tmp_path / "new" / "folder" / "a.bin"  # missing folders are made
    assert atomic_files.write_bytes(path, b"one") == path
    assert path.read_bytes() == b"one"
    atomic_files.write_text(str(path), "twö")
    assert path.read_bytes() == "twö".encode()
    assert [p.name for p in path.parent.iterdir()] == ["a.bin"]


def test_a_failure_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"old contents")
    with pytest.raises(OSError, match="No space left"):
        with atomic_files.writing(path) as f:
            f.write(b"half of the new")
            assert [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # beside it
            raise OSError("No space left on device")
    assert path.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]
    with pytest.raises(KeyboardInterrupt):  # not only errors: any interruption
        with atomic_files.writing(tmp_path / "other.png") as f:
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_permissions_follow_the_umask(tmp_path, umask_027):
    atomic_files.write_bytes(tmp_path / "a", b"x")
    atomic_files.write_files(tmp_path, {"b": b"y"})
    with atomic_files.writing_folder(tmp_path / "c") as tmp:
        tmp.mkdir()
    assert _mode(tmp_path / "a") == _mode(tmp_path / "b") == 0o640  # not mkstemp's 0600
    assert _mode(tmp_path / "c") == 0o750


def test_temporaries_are_unique(tmp_path, monkeypatch):
    names = []
    real_open = open

    def spy(file, mode="r", *args, **kwargs):
        names.append(os.path.basename(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy)
    for _ in range(2):
        atomic_files.write_bytes(tmp_path / "a.json", b"{}")
    assert len(set(names)) == 2
    assert all(n.startswith(f".a.json.{os.getpid()}.") and n.endswith(".tmp") for n in names)


def test_write_files_is_all_or_nothing(tmp_path):
    written = atomic_files.write_files(tmp_path, {"a.obj": b"a", "b.npz": b"b"})
    assert written == [tmp_path / "a.obj", tmp_path / "b.npz"]
    assert (tmp_path / "b.npz").read_bytes() == b"b"
    with pytest.raises(TypeError):  # the third file cannot be written: none of them stays
        atomic_files.write_files(tmp_path / "out", {"a.obj": b"a", "b.npz": b"b", "c": None})
    assert not list((tmp_path / "out").iterdir())
    # The last rename fails (a folder where a file must go): those renamed are removed too.
    (tmp_path / "out" / "c.png" / "x").mkdir(parents=True)
    with pytest.raises(OSError):
        atomic_files.write_files(tmp_path / "out", {"a.obj": b"a", "b.npz": b"b", "c.png": b"c"})
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["c.png", "x"]


def test_writing_folder_renames_or_removes_the_temporary(tmp_path):
    target = tmp_path / "cache"
    with atomic_files.writing_folder(target) as tmp:
        assert tmp.parent == tmp_path and not tmp.exists()
        tmp.mkdir()
        (tmp / "x.npy").write_bytes(b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]
    assert (target / "x.npy").read_bytes() == b"x"
    with pytest.raises(RuntimeError):
        with atomic_files.writing_folder(tmp_path / "other") as tmp:
            tmp.mkdir()
            (tmp / "half.npy").write_bytes(b"h")
            raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]
    # A folder that appeared meanwhile (another writer) is not replaced; ours is removed.
    with pytest.raises(OSError):
        with atomic_files.writing_folder(target) as tmp:
            tmp.mkdir()
            (tmp / "y.npy").write_bytes(b"y")
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]
    assert [p.name for p in target.iterdir()] == ["x.npy"]
