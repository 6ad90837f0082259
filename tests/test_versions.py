"""Kernel versions as users write them, and every row of data/kernel/changes.csv on both sides of each
of its boundaries (mainline and every stable series it lists)."""
import pytest

from ftsim import policy, versions
from ftsim.errors import FtsimError
from ftsim.model import Model


@pytest.mark.parametrize("given,label", [
    ("6.12.117+deb13-amd64", "merged 6.12.117"), ("7.2.13", "merged 7.2.13"), ("7.3-rc7", "merged 7.3-rc7"),
    ("6.1.0-56-amd64", "merged 6.1.192"), ("7.3-amd64", "merged 7.3"), ("6.12", "merged 6.12"),
])
def test_versions_as_users_have_them(given, label):
    p = policy.get("merged", kernel=given)
    assert p.label == label and p.kernel_given == given


@pytest.mark.parametrize("bad", ["9.0", "7.4", "5.19", "6", "6.x", "", " 6.1", "6.1.", "٦.١", "6.1.0-999-amd64"])
def test_bad_versions_are_one_line_errors(bad):
    with pytest.raises(FtsimError) as e:
        policy.get("merged", kernel=bad)
    assert "\n" not in str(e.value) and "kernel" in str(e.value)


def _before(v: versions.Version) -> versions.Version:
    """The release just before ``v`` in its series (X.Y.Z-1), or the previous mainline release."""
    if v.patch:
        return versions.Version(v.major, v.minor, v.patch - 1)
    return versions.Version(v.major, v.minor - 1, 0) if v.minor else versions.Version(v.major - 1, 19, 0)


def _sides():
    for ch in policy.changes():
        for field, value in ch.moves:
            if field == "arbitration":
                continue
            yield ch.id, ch.mainline, field, value, "mainline"
            for series, first in ch.stable.items():
                if isinstance(first, versions.Version):
                    yield ch.id, first, field, value, f"{series[0]}.{series[1]}.y"


SIDES = list(_sides())


@pytest.mark.parametrize("cid,at,field,value,where", SIDES, ids=[f"{s[0]}-{s[2]}-{s[4]}" for s in SIDES])
def test_each_change_on_both_sides_of_its_boundary(cid, at, field, value, where):
    """At the first release that carries the change the field has the change's value; at the release
    before it the field differs (unless a later change of the table set it back), or its presence is
    reported as not known."""
    after = policy.get("merged", kernel=str(at))
    assert getattr(after, field) == value, (cid, str(at))
    if at < versions.Version(6, 1):
        return                                           # merged starts at 6.0; nothing before
    before = policy.get("merged", kernel=str(_before(at)))
    known = {f for f, _ in before.unknown}
    assert getattr(before, field) != value or field in known, (cid, str(_before(at)))


def test_the_m_letter_appears_from_6_4():
    """FTRACE_FL_MODIFIED (6ce2c04fcbca): the record line of a function that had an IPMODIFY ops."""
    lines = {}
    for k in ("6.3", "6.4"):
        m = Model(policy.get("merged", kernel=k))
        m.attach("livepatch", "cmdline_proc_show", "lp")
        m.detach("lp")
        m.attach("ftrace-ops", "cmdline_proc_show", "ops")
        lines[k] = m.line("cmdline_proc_show")["flags"]
    assert lines == {"6.3": "", "6.4": "M"}


def test_a_change_not_known_in_a_series_is_reported():
    p = policy.get("merged", kernel="7.1")
    assert any(f == "tracing_multi" for f, _ in p.unknown) and not p.tracing_multi
    assert "not known" in (p.note_unknown("tracing_multi") or "")
