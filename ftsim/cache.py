"""The batch engine's transition tables on disk, so that a new process starts warm.

Where: ``$FTSIM_CACHE``, else ``$XDG_CACHE_HOME/ftsim``, else ``~/.cache/ftsim`` (``FTSIM_CACHE=off``
disables).  One file per model version and ``instances``: ``tables-<hash of the model's
source>-i<instances>.pickle``.  Nothing is read or written unless a run asks for it
(``batch.run(..., persist=True)``, ``batch.save_tables()``).
"""
from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import numpy as np


def cache_dir() -> Path | None:
    """Where tables persist between processes ("off": nowhere)."""
    d = os.environ.get("FTSIM_CACHE") or str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ftsim")
    return None if d == "off" else Path(d)


#: modules a transition does not depend on (their changes keep the saved tables valid)
NOT_IN_HASH = ("metrics", "plots", "sweep", "bench", "workload", "widgets", "cli", "cache", "designs", "thread",
               "locking", "lockstats", "orders", "observed", "paths")


def code_hash() -> str:
    """A hash of every module a transition depends on (and of Python's and numpy's versions)."""
    import hashlib
    import sys
    h = hashlib.sha256(f"{sys.version_info[:2]} {np.__version__}".encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.stem not in NOT_IN_HASH:
            h.update(path.read_bytes())
    return h.hexdigest()[:20]


def path_for(instances: int) -> Path | None:
    d = cache_dir()
    return None if d is None else d / f"tables-{code_hash()}-i{instances}.pickle"


#: tables of another version of the model are deleted when they were last written this long ago
STALE_SECONDS = 24 * 3600


def prune(now: float | None = None) -> list:
    """Delete table files of other versions of the model not written for STALE_SECONDS (a day: two
    checkouts sharing the cache do not delete each other's fresh tables); returns them."""
    d = cache_dir()
    if d is None or not d.is_dir():
        return []
    keep, now = f"tables-{code_hash()}-", time.time() if now is None else now
    gone = []
    for path in d.glob("tables-*.pickle"):
        try:
            if not path.name.startswith(keep) and now - path.stat().st_mtime > STALE_SECONDS:
                path.unlink()
                gone.append(path)
        except OSError:
            pass
    return gone


def load(instances: int):
    """The saved tables for ``instances``, or None (no cache, or an unreadable one: start afresh)."""
    from .batch import Tables
    path = path_for(instances)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            tb = pickle.load(f)
        return tb if isinstance(tb, Tables) and tb.I == instances else None
    except Exception:          # noqa: BLE001
        return None


def save(tb) -> Path | None:
    """Write ``tb`` atomically; returns its path (None when the cache is off or not writable)."""
    path = path_for(tb.I)
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        with open(tmp, "wb") as f:
            pickle.dump(tb, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        return None
    prune()
    return path
