"""Kernel versions as users have them: ``6.1``, ``6.12.117``, ``7.3-rc7``, ``uname -r`` strings
(``6.12.117+deb13-amd64``, ``7.3-amd64``) and Debian ABI names (``6.1.0-56-amd64`` -> 6.1.192 through
``data/kernel/debian-abi.csv``).

A version is ordered as the kernel's releases are: ``7.3-rc7 < 7.3 < 7.3.1``; ``6.12`` means the
mainline release 6.12 (= 6.12.0).  The model knows kernels up to ``NEWEST`` (checked against the
7.3-rc7 source); a newer version, or a Debian ABI name the table does not list, is refused with a
one-line error naming what is known.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache, total_ordering

from .errors import bad
from .paths import DATA

_RELEASE = 10**6          # an -rcN sorts before the release: rc keys N < _RELEASE
_PLAIN = re.compile(r"(\d{1,2})\.(\d{1,3})(?:\.(\d{1,4}))?(?:-rc(\d{1,2}))?", re.ASCII)
_UNAME = re.compile(r"(\d{1,2})\.(\d{1,3})(?:\.(\d{1,4}))?(?:-rc(\d{1,2}))?(?:[+~][A-Za-z0-9.]+)?(?:-[a-z0-9]+(?:-[a-z0-9]+)*)?",
                    re.ASCII)
_DEBIAN_ABI = re.compile(r"(\d{1,2}\.\d{1,3}\.0-\d{1,3})(?:-[a-z0-9]+(?:-[a-z0-9]+)*)?", re.ASCII)


@total_ordering
@dataclass(frozen=True)
class Version:
    """One kernel release: ``major.minor[.patch][-rcN]``; ``debian`` keeps the ABI name it came from."""
    major: int
    minor: int
    patch: int = 0
    rc: int | None = None
    given: str = ""

    @property
    def key(self) -> tuple[int, int, int, int]:
        return (self.major, self.minor, self.patch, _RELEASE if self.rc is None else self.rc)

    @property
    def series(self) -> tuple[int, int]:
        """The stable series (major, minor): 6.1.192 -> (6, 1)."""
        return self.major, self.minor

    def __lt__(self, other):
        return self.key < _key(other)

    def __eq__(self, other):
        return isinstance(other, Version) and self.key == other.key

    def __hash__(self):
        return hash(self.key)

    def __str__(self):
        s = f"{self.major}.{self.minor}"
        if self.patch:
            s += f".{self.patch}"
        if self.rc is not None:
            s += f"-rc{self.rc}"
        return s


def _key(v) -> tuple:
    return v.key if isinstance(v, Version) else parse(v).key


#: the newest kernel the model is checked against (the 7.3-rc7 source; 7.3 is modelled as it)
NEWEST = Version(7, 3)
#: kernels whose source was read rule by rule (data/kernel/changes.csv cites their file:line)
VERIFIED = ("6.1.192", "6.12.117", "7.2.13", "7.3-rc7")
#: the kernels people run (Debian's): shown side by side in the notebooks and the README
USER_KERNELS = ("6.1.192", "6.12.117", "7.2.13", "7.3")

ALLOWED = ("X.Y, X.Y.Z or X.Y-rcN (e.g. 6.1.192, 6.12, 7.3-rc7), a uname -r string such as "
           "6.12.117+deb13-amd64, or a Debian ABI name such as 6.1.0-56-amd64; newest known: 7.3")


@lru_cache(maxsize=1)
def debian_abi() -> dict[str, str]:
    """Debian ABI name (``6.1.0-56``) -> upstream version (``6.1.192``), from data/kernel/debian-abi.csv."""
    with open(DATA / "kernel" / "debian-abi.csv", newline="") as f:
        return {row["abi"]: row["upstream"] for row in csv.DictReader(f)}


def parse(text, field: str = "kernel") -> Version:
    """A version from any of the accepted spellings (see the module docstring); one-line FtsimError else."""
    if isinstance(text, Version):
        return text
    if not isinstance(text, str) or not text or not text.isascii():
        raise bad(field, text, ALLOWED)
    m = _DEBIAN_ABI.fullmatch(text)
    if m:
        abi = m[1]
        table = debian_abi()
        if abi not in table:
            known = ", ".join(f"{a} ({v})" for a, v in table.items())
            raise bad(field, text, f"a Debian ABI name listed in data/kernel/debian-abi.csv: {known}")
        v = parse(table[abi], field)
        return Version(v.major, v.minor, v.patch, v.rc, text)
    m = _PLAIN.fullmatch(text) or _UNAME.fullmatch(text)
    if not m:
        raise bad(field, text, ALLOWED)
    major, minor, patch, rc = int(m[1]), int(m[2]), int(m[3] or 0), (int(m[4]) if m[4] else None)
    if rc is not None and patch:
        raise bad(field, text, "an -rcN only on a mainline version (X.Y-rcN)")
    v = Version(major, minor, patch, rc, text)
    if v > NEWEST:
        raise bad(field, text, f"a kernel up to {NEWEST} (the newest the model is checked against; "
                               f"checked source: {', '.join(VERIFIED)})")
    return v


def at_least(v: Version, text: str) -> bool:
    return v.key >= parse(text).key
