"""A sweep's files: OUT and its parts directory checked before work, the lock, atomic writes, chunks
that carry their parameters and a checksum of their rows, the manifest (``ftsim.sweep`` runs them)."""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import stat
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics, policy as policies, workload
from .errors import FtsimError
from .workload import bad

#: version of the chunk and manifest layout
FORMAT = 1
COLUMNS = ["policy", "workload", *metrics.METRICS]
CHUNK_META = "ftsim_chunk"


def _policy(name: str, spec):
    kernel, sets = (spec.get("kernel"), spec.get("sets") or {}) if isinstance(spec, dict) else (spec, {})
    return policies.get(name, kernel=kernel, **sets) if name == "merged" else policies.get(name, **sets)


# -- paths -----------------------------------------------------------------------------------------------

def _name_max(d: Path) -> int:
    try:
        return os.pathconf(d, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _check_out(out) -> Path:
    """OUT: a new or regular ``.parquet`` file in an existing writable directory, with room in its name
    for ``OUT.parts`` and temporary names; checked before any work."""
    try:
        out = Path(os.fspath(out))
    except TypeError:
        raise bad("out", out, "a path ending in .parquet") from None
    shown = str(out)
    if "\0" in shown:
        raise bad("out", shown, "a path without NUL bytes")
    if out.suffix != ".parquet" or out.name == ".parquet":
        raise bad("out", shown, "a path ending in .parquet")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        pst = os.stat(parent)
    except OSError as e:
        raise bad("out", shown, f"a file in an existing, writable directory ({parent}: {e.strerror})") from None
    if not stat.S_ISDIR(pst.st_mode) or not os.access(parent, os.W_OK | os.X_OK):
        raise bad("out", shown, "a file in an existing, writable directory")
    room = _name_max(parent) - len(".parts") - 24           # OUT.parts, and '.OUT.XXXXXXXX.tmp'
    if len(os.fsencode(out.name)) > room:
        raise bad("out", f"{out.name[:40]}...", f"a file name of at most {room} bytes "
                                                 f"(this one has {len(os.fsencode(out.name))})")
    if len(os.fsencode(os.path.abspath(out))) > 4000:
        raise bad("out", f"{shown[:40]}...", "a path of at most 4,000 bytes")
    for path, what in ((out, "a regular file or a new name"), (_parts(out), "a directory of this sweep's chunks")):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise bad("out", str(path), f"{what} ({e.strerror})") from None
        kind = _kind(st)
        if path == out and kind != "a regular file":
            raise FtsimError(f"out: {str(path)!r} is {kind}; allowed: {what}")
        if path != out and kind != "a directory":
            raise FtsimError(f"out: {str(path)!r} is {kind}; allowed: {what} (remove it or choose another --out)")
    return out


def _parts(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def _kind(st) -> str:
    m = st.st_mode
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(m):
            return name
    return "not a regular file"


@contextlib.contextmanager
def _locked(parts: Path):
    """Hold an exclusive lock on ``parts/lock`` (a second sweep into the same OUT is refused)."""
    path = parts / "lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as e:
        raise FtsimError(f"out: {str(path)!r} cannot be opened ({e.strerror}); allowed: a directory of this "
                         "sweep's chunks (remove it or choose another --out)") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise FtsimError(f"out: {str(parts.with_suffix(''))!r} is being written by another sweep (pid {other}); "
                             "wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _write_atomic(path: Path, write, what: str):
    """``write(tmp)`` to a unique temporary name beside ``path``, then rename it into place; the
    temporary file is removed whatever happens.  OSError (a full disk, ...) becomes a one-line error."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise FtsimError(f"out: {what} {str(path)!r} cannot be written ({e.strerror or e})") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


# -- chunks ----------------------------------------------------------------------------------------------

def _chunk_path(parts: Path, start: int) -> Path:
    return parts / f"chunk-{start:010d}.parquet"


def checksum(df: pd.DataFrame) -> str:
    """SHA-256 of a chunk's columns, dtypes and values (the order of rows included)."""
    h = hashlib.sha256(json.dumps([list(map(str, df.columns)), [str(t) for t in df.dtypes]]).encode())
    h.update(np.ascontiguousarray(pd.util.hash_pandas_object(df, index=False).to_numpy()).tobytes())
    return h.hexdigest()


def _save_chunk(parts: Path, start: int, n: int, df: pd.DataFrame, manifest: dict):
    df = df.reset_index(drop=True)
    df.attrs = {CHUNK_META: json.dumps({"sweep": manifest, "start": start, "n": n, "rows": len(df),
                                        "checksum": checksum(df)})}
    _write_atomic(_chunk_path(parts, start), lambda tmp: df.to_parquet(tmp, index=False), "chunk")


class _BadChunk(Exception):
    pass


def _read_chunk(path: Path, start: int, n: int, manifest: dict) -> pd.DataFrame:
    """A verified chunk; _BadChunk (recompute it) when it does not verify; FtsimError when it is a
    chunk of another sweep."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            raise _BadChunk(_kind(st))
        df = pd.read_parquet(path)
    except _BadChunk:
        raise
    except Exception as e:              # noqa: BLE001 - pyarrow and OS errors alike: an unreadable chunk
        raise _BadChunk(f"unreadable: {type(e).__name__}") from None
    try:
        meta = json.loads(df.attrs[CHUNK_META])
        theirs = meta["sweep"]
    except (KeyError, TypeError, ValueError):
        raise _BadChunk("not written by ftsim sweep") from None
    if theirs != manifest:
        raise FtsimError(f"out: chunk {str(path)!r} is of another sweep ({_differs(theirs, manifest)}); "
                         f"remove {str(path.parent)!r} or choose another --out")
    df.attrs = {}
    if meta.get("start") != start or meta.get("n") != n:
        raise _BadChunk(f"workloads {meta.get('start')}+{meta.get('n')}, expected {start}+{n}")
    if sorted(map(str, df.columns)) != sorted(COLUMNS) or len(df.columns) != len(COLUMNS):
        raise _BadChunk("columns differ")
    rows = n * len(manifest["policies"])
    if len(df) != rows or meta.get("rows") != rows:
        raise _BadChunk(f"{len(df)} rows, expected {rows}")
    if meta.get("checksum") != checksum(df):
        raise _BadChunk("checksum differs")
    return df


def _differs(theirs, ours) -> str:
    if not isinstance(theirs, dict):
        return "no parameters"
    for k in ours:
        if theirs.get(k) != ours[k]:
            a, b = json.dumps(theirs.get(k))[:60], json.dumps(ours[k])[:60]
            return f"{k} {a}, this sweep: {b}"
    extra = sorted(set(theirs) - set(ours))
    return f"parameter {extra[0]!r}" if extra else "parameters differ"


def _notice(msg: str):
    print(f"ftsim: sweep: {msg}", file=sys.stderr)


def _manifest(preset, names, kernel, workloads, events, seed, chunk, overrides, sets=None) -> dict:
    from . import cache
    p = workload.resolve(preset, **overrides)
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(p).items()}
    params["lifetimes"] = [None if math.isinf(x) else x for x in params["lifetimes"]]
    h = hashlib.sha256(cache.code_hash().encode())
    for mod in (workload, metrics):
        h.update(Path(mod.__file__).read_bytes())
    spec = {"kernel": kernel, "sets": dict(sorted((sets or {}).items()))} if sets else kernel
    m = dict(format=FORMAT, preset=preset, policies=names, labels=[_policy(x, spec).label for x in names],
             workloads=workloads, events=events, seed=seed, chunk=chunk, kernel=spec,
             overrides={k: v for k, v in sorted(overrides.items())}, params=params, model=h.hexdigest()[:20])
    try:
        return json.loads(json.dumps(m, allow_nan=False, default=_plain))
    except (TypeError, ValueError):
        raise bad("workload parameter", overrides, "JSON numbers, strings, lists and dicts") from None


def _plain(o):
    """numpy scalars in overrides, as JSON numbers."""
    if isinstance(o, np.generic) and not isinstance(o, np.bool_):
        return o.item()
    raise TypeError(type(o).__name__)


def _read_manifest(path: Path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise FtsimError(f"out: {str(path)!r} cannot be read ({e.strerror}); remove {str(path.parent)!r} "
                         "or choose another --out") from None
    try:
        if not stat.S_ISREG(st.st_mode) or st.st_size > 2**20:
            raise ValueError(_kind(st) if not stat.S_ISREG(st.st_mode) else "too large")
        with open(path, "rb") as f:
            m = json.loads(f.read().decode("utf-8"))
        if not isinstance(m, dict):
            raise ValueError("not a JSON object")
        return m
    except (OSError, ValueError) as e:
        raise FtsimError(f"out: {str(path)!r} is not a sweep manifest ({str(e)[:80]}); remove "
                         f"{str(path.parent)!r} or choose another --out") from None
