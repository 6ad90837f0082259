"""The table cache: no pickle; a planted, tampered, foreign, symlinked or too-open file is ignored with a
one-line notice and never runs code nor changes a result; atomic writes; prune() keeps others' files."""
import errno
import os
import pickle
import stat
import threading
import time

import numpy as np
import pytest

from ftsim import batch, cache

ROOT = os.geteuid() == 0
MARKER = "ftsim-cache-payload-ran"


class Stub:
    """Stands in for batch.Tables with the lead's contract: to_arrays() -> plain arrays; from_arrays()
    rebuilds, raising ValueError when the arrays are inconsistent."""

    def __init__(self, I=1, n=5):
        self.I = I
        self.next = np.arange(n * 3, dtype=np.int32)
        self.tab = np.zeros(n * 3, batch.REC)
        self.tab["ret"] = -np.arange(n * 3) % 17
        self.st = np.ones((7, n), np.int16)

    def to_arrays(self):
        return {"I": np.array([self.I], np.int64), "next": self.next, "tab": self.tab, "st": self.st}

    @classmethod
    def from_arrays(cls, d):
        if set(d) != {"I", "next", "tab", "st"} or d["next"].shape != d["tab"].shape or \
                d["st"].shape[0] != 7 or d["next"].size != 3 * d["st"].shape[1]:
            raise ValueError("inconsistent arrays")
        tb = cls.__new__(cls)
        tb.I, tb.next, tb.tab, tb.st = int(d["I"][0]), d["next"], d["tab"], d["st"]
        return tb


class Payload:
    """Unpickling this creates the marker file: a pickle that runs code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def cdir(tmp_path, monkeypatch):
    d = tmp_path / "cache" / "ftsim"
    monkeypatch.setenv("FTSIM_CACHE", str(d))
    cache._noticed.clear()
    return d


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.to_arrays().values(), b.to_arrays().values()))


def load(capsys=None):
    return cache.load(1, cls=Stub)


def test_round_trip_dir_0700_file_0600_no_pickle(cdir):
    tb = Stub()
    path = cache.save(tb)
    assert path == cache.path_for(1) and path.suffix == ".npz"
    assert stat.S_IMODE(os.stat(cdir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cdir / cache.KEY).st_mode) == 0o600
    assert same(load(), tb)
    assert not list(cdir.glob("*.tmp")) and not list(cdir.glob(".*.tmp"))
    src = open(cache.__file__).read()
    assert "import pickle" not in src and "pickle.load" not in src and "allow_pickle=True" not in src


def _ignored(capsys, needle):
    assert load() is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ftsim: cache: ignoring ") and needle in err, err
    cache._noticed.clear()


def test_a_planted_pickle_never_runs(cdir, tmp_path, capsys):
    cache.save(Stub())
    marker = tmp_path / MARKER
    path = cache.path_for(1)
    path.write_bytes(pickle.dumps(Payload(marker)))
    os.chmod(path, 0o600)
    _ignored(capsys, "not a readable table file")
    (cdir / f"tables-{cache.code_hash()}-i1.pickle").write_bytes(pickle.dumps(Payload(marker)))  # the old name
    assert load() is None and not marker.exists()


def test_an_object_array_in_an_npz_never_runs(cdir, tmp_path, capsys):
    cache.save(Stub())
    marker = tmp_path / MARKER
    d = dict(np.load(cache.path_for(1)))
    d["next"] = np.array([Payload(marker)], dtype=object)
    with open(cache.path_for(1), "wb") as f:
        np.savez(f, **d)
    _ignored(capsys, "not a readable table file")
    assert not marker.exists()


def test_a_tampered_valid_npz_is_refused(cdir, capsys):
    cache.save(Stub())
    path = cache.path_for(1)
    d = dict(np.load(path))
    d["tab"]["ret"][3] = 0                       # a valid file with one changed result
    with open(path, "wb") as f:
        np.savez(f, **d)
    _ignored(capsys, "do not match their authentication code")


@pytest.mark.parametrize("field, value, needle", [("code_hash", "0" * 20, "code_hash"), ("format", 99, "format"),
                                                  ("instances", 2, "instances")])
def test_meta_of_another_version_is_refused(cdir, capsys, field, value, needle):
    import json
    cache.save(Stub())
    path = cache.path_for(1)
    d = dict(np.load(path))
    meta = json.loads(d[cache.META].tobytes())
    meta[field] = value
    d[cache.META] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **d)
    _ignored(capsys, needle)


def test_inconsistent_shapes_are_refused_even_when_authentic(cdir, capsys):
    tb = Stub()
    tb.st = np.ones((7, 9), np.int16)           # 9 states, 15 keys: from_arrays raises ValueError
    cache.save(tb)
    _ignored(capsys, "inconsistent tables: ValueError")


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "compressed", "extra member"])
def test_damaged_files_are_refused(cdir, capsys, damage):
    cache.save(Stub())
    path = cache.path_for(1)
    data = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(4096))
    elif damage == "compressed":
        d = dict(np.load(path))
        with open(path, "wb") as f:
            np.savez_compressed(f, **d)
    else:
        import zipfile
        with zipfile.ZipFile(path, "a") as z:
            z.writestr("evil.txt", "x")
    assert load() is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ftsim: cache: ignoring" in err


def test_a_symlink_is_never_followed(cdir, tmp_path, capsys):
    cache.save(Stub())
    path = cache.path_for(1)
    real = tmp_path / "elsewhere.npz"
    os.replace(path, real)
    os.symlink(real, path)
    _ignored(capsys, "a symlink")
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    path.unlink()
    os.symlink(victim, path)                    # save() replaces the link, the target is untouched
    assert cache.save(Stub()) == path and not path.is_symlink()
    assert victim.read_text() == "keep me" and same(load(), Stub())


def test_a_file_writable_by_others_is_refused(cdir, capsys):
    cache.save(Stub())
    os.chmod(cache.path_for(1), 0o666)
    _ignored(capsys, "writable by group or others (mode 0666)")
    os.chmod(cache.path_for(1), 0o620)
    _ignored(capsys, "writable by group or others")


@pytest.mark.skipif(not ROOT, reason="chown to another user needs root")
def test_a_file_of_another_owner_is_refused(cdir, capsys):
    cache.save(Stub())
    os.chown(cache.path_for(1), 12345, 12345)
    _ignored(capsys, "owned by uid 12345")
    cache.save(Stub())                          # replaced by our own file
    assert os.stat(cache.path_for(1)).st_uid == os.geteuid() and same(load(), Stub())
    os.chown(cdir / cache.KEY, 12345, 12345)    # a key planted by someone else
    _ignored(capsys, "its key key is not to be trusted: owned by uid 12345")
    assert cache.save(Stub()) is not None       # a new key replaces it (with a notice)
    assert "replacing the key" in capsys.readouterr().err
    assert os.stat(cdir / cache.KEY).st_uid == os.geteuid() and same(load(), Stub())


def test_a_special_file_at_the_name_is_refused_without_blocking(cdir, capsys):
    cdir.mkdir(parents=True)
    os.mkfifo(cache.path_for(1), 0o600)
    done = []
    t = threading.Thread(target=lambda: done.append(load()), daemon=True)
    t.start()
    t.join(5)
    assert done == [None]
    assert "not a regular file" in capsys.readouterr().err


def test_a_failed_write_leaves_no_temporary_file(cdir, monkeypatch):
    cache.save(Stub())
    before = sorted(p.name for p in cdir.iterdir())

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(np, "savez", full)
    assert cache.save(Stub(n=9)) is None
    assert sorted(p.name for p in cdir.iterdir()) == before
    monkeypatch.undo()
    monkeypatch.setenv("FTSIM_CACHE", str(cdir))
    monkeypatch.setattr(os, "replace", full)
    assert cache.save(Stub(n=9)) is None
    assert sorted(p.name for p in cdir.iterdir()) == before
    monkeypatch.undo()
    monkeypatch.setenv("FTSIM_CACHE", str(cdir))
    assert same(load(), Stub())                 # the old file is intact


def test_temporary_names_are_unique_and_unpredictable(cdir, monkeypatch):
    names = []
    real = os.replace

    def spy(a, b):
        names.append(os.path.basename(a))
        return real(a, b)
    monkeypatch.setattr(os, "replace", spy)
    for _ in range(3):
        cache.save(Stub())
    assert len(set(names)) == 3 and all(str(os.getpid()) not in n for n in names)


def test_concurrent_saves_leave_one_valid_file(cdir):
    threads = [threading.Thread(target=cache.save, args=(Stub(n=k + 2),)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tb = load()
    assert tb is not None and tb.next.size in {3 * (k + 2) for k in range(8)}
    assert not [p for p in cdir.iterdir() if p.name.endswith(".tmp")]


def test_cache_dir_not_a_directory_or_off(cdir, tmp_path, monkeypatch, capsys):
    cdir.parent.mkdir(parents=True)
    cdir.write_text("a file")
    assert cache.save(Stub()) is None and "not a directory" in capsys.readouterr().err
    monkeypatch.setenv("FTSIM_CACHE", "off")
    assert cache.save(Stub()) is None and cache.load(1, cls=Stub) is None and cache.prune() == []


def test_prune_touches_only_own_stale_files(cdir, tmp_path):
    cache.save(Stub())
    old = time.time() - 2 * cache.STALE_SECONDS
    mine = cdir / "tables-0123456789abcdef0123-i1.npz"
    legacy = cdir / "tables-0123456789abcdef0123-i1.pickle"
    stray = cdir / ".tables-0123456789abcdef0123-i1.npz.abc.tmp"
    fresh = cdir / "tables-fedcba9876543210fedc-i1.npz"
    target = tmp_path / "target.npz"
    link = cdir / "tables-aaaaaaaaaaaaaaaaaaaa-i1.npz"
    for p in (mine, legacy, stray, fresh, target):
        p.write_bytes(b"x")
    os.symlink(target, link)
    for p in (mine, legacy, stray, target):
        os.utime(p, (old, old))
    os.utime(link, (old, old), follow_symlinks=False)
    theirs = None
    if ROOT:
        theirs = cdir / "tables-bbbbbbbbbbbbbbbbbbbb-i1.npz"
        theirs.write_bytes(b"x")
        os.chown(theirs, 12345, 12345)
        os.utime(theirs, (old, old))
    gone = cache.prune()
    assert sorted(gone) == sorted([mine, legacy, stray])
    assert fresh.exists() and link.is_symlink() and target.exists() and cache.path_for(1).exists()
    assert theirs is None or theirs.exists()


# -- the real tables ------------------------------------------------------------------------------------

def test_real_tables_round_trip_and_a_tampered_file_changes_no_result(cdir, monkeypatch, capsys):
    from ftsim import metrics
    monkeypatch.setattr(batch, "TABLES", {})
    fresh = metrics.Outcomes(preset="bpf-lsm", workloads=20, events=80, seed=3, persist=True).df_workloads()
    assert cache.path_for(1).exists()
    monkeypatch.setattr(batch, "TABLES", {})
    warm = metrics.Outcomes(preset="bpf-lsm", workloads=20, events=80, seed=3, persist=True).df_workloads()
    assert batch.TABLES[1].transitions == batch.TABLES[1].saved
    path = cache.path_for(1)
    d = dict(np.load(path))
    for name, a in d.items():
        if name != cache.META and a.dtype.fields and "ret" in a.dtype.fields:
            a["ret"][:] = 0                         # every attach told 0
    with open(path, "wb") as f:
        np.savez(f, **d)
    monkeypatch.setattr(batch, "TABLES", {})
    tampered = metrics.Outcomes(preset="bpf-lsm", workloads=20, events=80, seed=3, persist=True).df_workloads()
    import pandas as pd
    pd.testing.assert_frame_equal(fresh, warm)
    pd.testing.assert_frame_equal(fresh, tampered)
    assert "ignoring" in capsys.readouterr().err
