"""The batch engine's transition tables on disk, so that a new process starts warm.

Where: ``$FTSIM_CACHE``, else ``$XDG_CACHE_HOME/ftsim``, else ``~/.cache/ftsim`` (``FTSIM_CACHE=off``
disables).  One file per model version and ``instances``: ``tables-<hash of the model's
source>-i<instances>.npz``.  Nothing is read or written unless a run asks for it
(``batch.run(..., persist=True)``, ``batch.save_tables()``).

Nothing read from the cache can run code or change a result:
  * the tables are plain numeric arrays (``Tables.to_arrays()``) in an uncompressed ``.npz`` written by
    ``numpy.savez`` and read with ``numpy.load(..., allow_pickle=False)``; no pickle anywhere;
  * a file is used only when it is a regular file (opened with ``O_NOFOLLOW``: a symlink is refused)
    owned by this user and not writable by group or others, no larger than ``MAX_BYTES``, its members
    stored (no zip bomb), its format version, model hash and ``instances`` those of this process, its
    arrays authenticated by an HMAC-SHA256 under a per-user key kept in the directory (``key``, 0600),
    and ``Tables.from_arrays`` accepts them; otherwise it is ignored with one line on stderr and the
    tables are rebuilt;
  * the directory is created 0700; a file is written to a ``mkstemp`` name in the directory and renamed
    into place (a symlink planted at the name is replaced, never followed), the temporary file is
    removed when anything fails; ``prune()`` deletes only this user's own regular files.
"""
from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import stat
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

#: version of the file layout (meta, HMAC, array names); files of another version are ignored
FORMAT = 1
#: a table file larger than this is ignored without being read
MAX_BYTES = 4 * 2**30
META = "__meta__"
KEY = "key"
#: tables of another version of the model are deleted when they were last written this long ago
STALE_SECONDS = 24 * 3600


def cache_dir() -> Path | None:
    """Where tables persist between processes ("off": nowhere)."""
    d = os.environ.get("FTSIM_CACHE")
    if not d:
        try:
            d = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ftsim")
        except RuntimeError:                 # no home directory
            return None
    return None if d == "off" else Path(d)


#: modules a transition does not depend on (their changes keep the saved tables valid)
NOT_IN_HASH = ("metrics", "plots", "sweep", "bench", "workload", "widgets", "cli", "cache", "designs", "thread",
               "locking", "lockstats", "orders", "observed", "paths")


def code_hash() -> str:
    """A hash of every module a transition depends on (and of Python's and numpy's versions)."""
    h = hashlib.sha256(f"{sys.version_info[:2]} {np.__version__}".encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.stem not in NOT_IN_HASH:
            h.update(path.read_bytes())
    return h.hexdigest()[:20]


def path_for(instances: int) -> Path | None:
    d = cache_dir()
    return None if d is None else d / f"tables-{code_hash()}-i{int(instances)}.npz"


# -- notices -------------------------------------------------------------------------------------------

_noticed: set = set()


def _notice(path, why: str, saving: bool = False, line: str | None = None):
    """One line on stderr, once per file and reason in a process."""
    key = (str(path), why)
    if key not in _noticed:
        _noticed.add(key)
        what = line or (f"not saving to {path} ({why})" if saving else
                        f"ignoring {path} ({why}); the tables are rebuilt")
        print(f"ftsim: cache: {what}", file=sys.stderr)


def _unsafe(st: os.stat_result) -> str | None:
    """Why a file with this (l)stat must not be trusted, or None."""
    if stat.S_ISLNK(st.st_mode):
        return "a symlink"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not by you (uid {os.geteuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _open_trusted(path: Path, limit: int):
    """An open binary file for ``path`` when it is safe to read (see the module docstring), None when
    it does not exist; raises _Untrusted with the reason otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _Untrusted("a symlink" if e.errno == errno.ELOOP else f"cannot be read: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        why = _unsafe(st)
        if why is None and st.st_size > limit:
            why = f"{st.st_size:,} bytes, more than {limit:,}"
        if why:
            raise _Untrusted(why)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class _Untrusted(Exception):
    pass


# -- the key -------------------------------------------------------------------------------------------

def _key(d: Path, create: bool) -> bytes | None:
    """This user's key for the directory ``d`` (32 random bytes in ``d/key``, 0600), None when there is
    none; raises _Untrusted when the key file is not to be trusted.  With ``create``, an absent key is
    made (written whole to a temporary name, then linked: a reader never sees half of it) and an
    untrusted one replaced (which invalidates every file it authenticated)."""
    path = d / KEY
    for _ in range(3):
        try:
            f = _open_trusted(path, 64)
            if f is not None:
                with f:
                    key = f.read(65)
                if len(key) != 32:
                    raise _Untrusted(f"{len(key)} bytes, not 32")
                return key
            replace = False
        except _Untrusted as e:
            if not create:
                raise _Untrusted(f"its key {path.name} is not to be trusted: {e}") from None
            _notice(path, str(e), line=f"replacing the key {path} ({e}): the tables it signed are rebuilt")
            replace = True
        if not create:
            return None
        fd, tmp = tempfile.mkstemp(prefix=".key.", suffix=".tmp", dir=d)
        try:
            os.write(fd, os.urandom(32))
            os.fsync(fd)
            os.close(fd)
            fd = -1
            if replace:
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)           # fails if another process made one meanwhile: use it
                except FileExistsError:
                    pass
        finally:
            if fd >= 0:
                os.close(fd)
            _remove(tmp)
    return None


def _mac(key: bytes, meta: dict, arrays: dict) -> str:
    m = hmac.new(key, json.dumps(meta, sort_keys=True).encode(), hashlib.sha256)
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        m.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        m.update(memoryview(a).cast("B") if a.size else b"")
    return m.hexdigest()


# -- load and save -------------------------------------------------------------------------------------

def _tables_class():
    from .transitions import Tables
    return Tables


def load(instances: int, cls=None):
    """The saved tables for ``instances``, or None (no cache, nothing saved, or a file that is not
    to be trusted: a one-line notice on stderr, and the caller starts afresh).  ``cls``: the class
    whose ``from_arrays`` rebuilds them (``transitions.Tables``)."""
    cls = cls or _tables_class()
    if not hasattr(cls, "from_arrays"):
        return None
    path = path_for(instances)
    if path is None:
        return None
    try:
        f = _open_trusted(path, MAX_BYTES)
        if f is None:
            return None
        with f:
            arrays = _read_npz(f, os.fstat(f.fileno()).st_size)
        meta = _check_meta(arrays.pop(META), instances)
        key = _key(path.parent, create=False)
        if key is None:
            raise _Untrusted("no key to authenticate it")
        if not hmac.compare_digest(_mac(key, {k: v for k, v in meta.items() if k != "mac"}, arrays),
                                   str(meta.get("mac", ""))):
            raise _Untrusted("its arrays do not match their authentication code: changed after it was written")
        try:
            tb = cls.from_arrays(arrays)
        except Exception as e:           # noqa: BLE001 - inconsistent arrays: rebuild
            raise _Untrusted(f"inconsistent tables: {type(e).__name__}: {str(e)[:200]}") from None
        if getattr(tb, "I", None) != instances:
            raise _Untrusted(f"tables for instances={getattr(tb, 'I', None)!r}, not {instances}")
        return tb
    except _Untrusted as e:
        _notice(path, str(e))
    except OSError as e:
        _notice(path, f"cannot be read: {e.strerror or e}")
    return None


def _read_npz(f, size: int) -> dict:
    """Every array of an uncompressed .npz (as numpy.savez writes it), with no pickle and no member
    larger than the file itself."""
    try:
        with zipfile.ZipFile(f) as z:
            infos = z.infolist()
            names = [i.filename for i in infos]
            if len(set(names)) != len(names) or not all(n.endswith(".npy") for n in names):
                raise _Untrusted("not a table file (unexpected members)")
            if any(i.compress_type != zipfile.ZIP_STORED or i.file_size > size for i in infos) or \
                    sum(i.file_size for i in infos) > size:
                raise _Untrusted("not a table file (compressed or oversized members)")
        f.seek(0)
        with np.load(f, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except _Untrusted:
        raise
    except Exception as e:               # noqa: BLE001 - zip/npy errors, an object array (pickle refused)
        raise _Untrusted(f"not a readable table file: {type(e).__name__}: {str(e)[:200]}") from None


def _check_meta(raw, instances: int) -> dict:
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("meta is not bytes")
        meta = json.loads(raw.tobytes().decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("meta is not an object")
    except (ValueError, UnicodeDecodeError, AttributeError) as e:
        raise _Untrusted(f"not a table file: {e}") from None
    for key, want in (("format", FORMAT), ("code_hash", code_hash()), ("instances", instances)):
        if meta.get(key) != want:
            raise _Untrusted(f"{key} {meta.get(key)!r}, this process needs {want!r}")
    return meta


def _ensure_dir(d: Path) -> bool:
    """Create ``d`` 0700 when absent (its parents as usual); False when it is not a usable directory."""
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        pass
    except OSError as e:
        _notice(d, f"it cannot be created: {e.strerror or e}", saving=True)
        return False
    try:
        st = os.stat(d)
    except OSError as e:
        _notice(d, f"{e.strerror or e}", saving=True)
        return False
    if not stat.S_ISDIR(st.st_mode):
        _notice(d, "not a directory", saving=True)
        return False
    return True


def save(tb) -> Path | None:
    """Write ``tb`` (anything with ``I`` and ``to_arrays()``) atomically; returns its path (None when
    the cache is off or not writable, or the tables cannot be written as plain arrays)."""
    if not hasattr(tb, "to_arrays"):
        return None
    path = path_for(tb.I)
    if path is None or not _ensure_dir(path.parent):
        return None
    arrays = {str(k): np.asarray(v) for k, v in tb.to_arrays().items()}
    for name, a in arrays.items():
        if name == META or a.dtype.hasobject or not name.isidentifier():
            raise ValueError(f"Tables.to_arrays(): {name!r} ({a.dtype}) is not a plain array")
    tmp = None
    try:
        key = _key(path.parent, create=True)
        if key is None:
            return None
        meta = {"format": FORMAT, "code_hash": code_hash(), "instances": int(tb.I), "written": time.time()}
        meta["mac"] = _mac(key, meta, arrays)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays, **{META: np.frombuffer(json.dumps(meta).encode(), np.uint8)})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)                # replaces whatever entry is at path, never follows it
        tmp = None
    except OSError:
        return None
    finally:
        if tmp is not None:
            _remove(tmp)
    prune()
    return path


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def prune(now: float | None = None) -> list:
    """Delete this user's table files of other versions of the model (and old pickles, and temporary
    files left by a crash) not written for STALE_SECONDS (a day: two checkouts sharing the cache do not
    delete each other's fresh tables); returns them.  Other users' files, symlinks and anything that is
    not a regular file are left alone."""
    d = cache_dir()
    if d is None or not d.is_dir():
        return []
    keep, now = f"tables-{code_hash()}-", time.time() if now is None else now
    gone = []
    for pattern in ("tables-*.npz", "tables-*.pickle", ".tables-*.tmp", ".key.*.tmp"):
        for path in d.glob(pattern):
            try:
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                    continue
                if not path.name.startswith(keep) and now - st.st_mtime > STALE_SECONDS:
                    os.unlink(path)
                    gone.append(path)
            except OSError:
                pass
    return gone
