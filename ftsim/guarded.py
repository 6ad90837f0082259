"""One guarded reader for every file the kit reads on a user's behalf (scenarios, presets): regular
files only, opened non-blocking (a FIFO with no writer cannot hang), a size cap checked before and while
reading, UTF-8 with the offending byte and line named; every refusal a one-line FtsimError."""
from __future__ import annotations

import os
import stat

from .errors import FtsimError

#: the largest file read (a 100,000-line scenario is about 5 MiB)
MAX_BYTES = 16 * 2**20
_KIND = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
         stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket"}


def read_text(path, what: str, limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes, or a one-line FtsimError.  Opened
    non-blocking (a FIFO with no writer does not hang), checked with fstat, read at most limit + 1 bytes."""
    try:
        name = os.fspath(path)
    except TypeError:
        raise FtsimError(f"{what}: {path!r} is not allowed; allowed: a path") from None
    shown = name if isinstance(name, str) else os.fsdecode(name)
    allowed = f"a regular file of UTF-8 text, at most {limit // 2**20} MiB"
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as e:          # ValueError: a NUL byte in the path
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise FtsimError(f"{what}: {shown!r} cannot be read ({why}); allowed: {allowed}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _KIND.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise FtsimError(f"{what}: {shown!r} is {kind}; allowed: {allowed}")
        if st.st_size > limit:
            raise FtsimError(f"{what}: {shown!r} has {st.st_size:,} bytes; allowed: {allowed}")
        chunks, n = [], 0
        while n <= limit:
            b = os.read(fd, min(1 << 20, limit + 1 - n))
            if not b:
                break
            chunks.append(b)
            n += len(b)
    except OSError as e:
        raise FtsimError(f"{what}: {shown!r} cannot be read ({e.strerror}); allowed: {allowed}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:                       # grew while being read
        raise FtsimError(f"{what}: {shown!r} has more than {limit:,} bytes; allowed: {allowed}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise FtsimError(f"{what}: {shown!r} is not UTF-8 text (byte {data[e.start]:#04x} on line {line}); "
                         f"allowed: {allowed}") from None
