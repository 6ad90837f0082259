"""Results that take seconds and never change between runs of one model (the explorer's searches and
the decision grids of notebooks 4, 6 and 7), kept beside the batch engine's tables.

``stored(key, compute)`` returns ``compute()``, read back from ``$FTSIM_CACHE`` when the same model
(the hash of its source) stored it before.  No pickle: a result is JSON (a ``dict`` of strings, a
DataFrame in pandas' ``table`` orientation, which keeps its dtypes, stored only when it reads back
equal, or a list of ``explore.Exploration`` rebuilt field by field), read only through the table
cache's checks (regular file, this user's, not group/other-writable, no symlink, size bound) and only
when its HMAC-SHA256 under the directory's per-user key matches.  Anything else is recomputed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import json
import os
import tempfile

import pandas as pd

from . import cache

#: a stored result larger than this is ignored without being read
MAX_BYTES = 64 * 2**20


def key(*parts) -> str:
    """A file-name-safe key from any reprs (a Policy's repr names every field)."""
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


class NotStorable(TypeError):
    pass


def _exploration(ex) -> dict:
    d = {f.name: getattr(ex, f.name) for f in dataclasses.fields(ex)}
    d["policy"] = dataclasses.asdict(ex.policy)
    d["shortest"] = [[inv, path, rows] for (inv, path), rows in ex.shortest.items()]
    return d


def _from_exploration(d: dict):
    from .explore import Exploration
    from .policy import Policy
    pol = dict(d["policy"], unknown=tuple(d["policy"]["unknown"]))
    return Exploration(**dict(d, policy=Policy(**pol), consumers=tuple(d["consumers"]),
                              functions=tuple(d["functions"]),
                              shortest={(inv, path): rows for inv, path, rows in d["shortest"]}))


def _encode(value) -> dict:
    from .explore import Exploration
    if isinstance(value, pd.DataFrame):
        doc = {"kind": "frame", "value": value.to_json(orient="table")}
        if not _decode(doc).equals(value):          # tuples in cells, an index pandas cannot restore, ...
            raise NotStorable("this DataFrame does not read back equal from JSON")
        return doc
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return {"kind": "strings", "value": value}
    if isinstance(value, list) and value and all(isinstance(x, Exploration) for x in value):
        return {"kind": "explorations", "value": [_exploration(x) for x in value]}
    raise NotStorable(f"stored(): a {type(value).__name__} cannot be stored "
                      "(a DataFrame, a dict of str or a list of Exploration)")


def _decode(doc: dict):
    kind, value = doc.get("kind"), doc.get("value")
    if kind == "frame":
        return pd.read_json(io.StringIO(value), orient="table")
    if kind == "strings" and isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if kind == "explorations" and isinstance(value, list):
        return [_from_exploration(x) for x in value]
    raise ValueError(f"unknown kind {kind!r}")


def _mac(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def _read(path, secret: bytes):
    try:
        f = cache._open_trusted(path, MAX_BYTES)
    except cache._Untrusted as e:
        cache._notice(path, str(e), line=f"ignoring {path} ({e}); the result is recomputed")
        return None
    if f is None:
        return None
    with f:
        raw = f.read(MAX_BYTES + 1)
    try:
        mac, body = raw.split(b"\n", 1)
        if not hmac.compare_digest(mac.decode("ascii"), _mac(secret, body)):
            raise ValueError("its HMAC does not match")
        return _decode(json.loads(body))
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        cache._notice(path, str(e), line=f"ignoring {path} ({e}); the result is recomputed")
        return None


def _write(path, secret: bytes, value):
    body = json.dumps(_encode(value), sort_keys=True).encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_mac(secret, body).encode() + b"\n" + body)
        os.replace(tmp, path)
    finally:
        cache._remove(tmp)


def stored(name: str, compute):
    """``compute()``, kept on disk under ``name`` and the model's hash (``FTSIM_CACHE=off``: never)."""
    d = cache.cache_dir()
    if d is None or not cache._ensure_dir(d):
        return compute()
    path = d / f"result-{cache.code_hash()}-{name}.json"
    try:
        secret = cache._key(d, create=True)
    except (cache._Untrusted, OSError):
        secret = None
    if secret is None:
        return compute()
    value = _read(path, secret)
    if value is not None:
        return value
    value = compute()
    try:
        _write(path, secret, value)
    except NotStorable:
        pass                                      # kept in memory only: recomputed by the next process
    except OSError as e:
        cache._notice(path, e.strerror or str(e), saving=True)
    return value
