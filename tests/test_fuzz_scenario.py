"""Scenario text: every bad input is a one-line error naming file, line and token; special files are
refused without blocking; a fuzzer of near-valid scenarios (real consumers, handles, functions and
expectations, then mutated) gets a result or a one-line error, never a traceback, never a hang."""
import os
import stat
import threading

import hypothesis.strategies as st
import pytest
from hypothesis import given

from ftsim import consumers, functions, policy, scenario
from ftsim.errors import FtsimError
from test_fuzz_support import Tally, fuzz_settings


def parse(text):
    return scenario.parse_text(text, "x.fts")


@pytest.mark.parametrize("text, needle", [
    ("attach livepatch f => regen=²", "regen='²': expected a count"),
    ("attach livepatch f => regen=٣", "regen='٣': expected a count"),
    ("attach livepatch f => regen=99999999999999999999", "at most 9"),
    ("attach livepatch f => regen=" + "9" * 5000, "regen="),             # int() would refuse > 4300 digits
    ("attach livepatch f => --1", "expectation '--1' is unknown"),
    ("attach livepatch f => ¹", "expectation '¹' is unknown"),
    ("attach livepatch f => -١٦", "expectation '-١٦' is unknown"),
    ("attach livepatch f => record=١:I", "record='١:I'"),
    ("attach livepatch f =>[merged<٦.١٨] 0", "selector 'merged<٦.١٨' is unknown"),
    ("attach livepatch f =>[] 0", "'=>[]' selects nothing"),
    ("attach livepatch f =>[merged,] 0", "selector '' is unknown"),
    ("attach livepatch f => 0 => -EBUSY", "several plain '=>' groups"),
    ("attach livepatch f => 0 0", "given twice"),
    ("attach livepatch f => regen=1 regen=2", "given twice"),
    ("attach livepatch f => body=new", "'body=new' does not apply to an attach step"),
    ("attach livepatch f => result=lp", "'result=lp' does not apply to an attach step"),
    ("attach livepatch f as lp\ndetach lp => fired=lp", "'fired=lp' does not apply to a detach step"),
    ("call f => 0", "'0' does not apply to a call step"),
    ("call f => attached=yes", "'attached=yes' does not apply to a call step"),
    ("call f => result=", "result='': allowed: orig or a handle"),
    ("call f => fired=a,,b", "fired: '' is not a handle"),
    ("\ufeffjump f", "step 'jump' is unknown"),                    # a BOM is ignored, nothing else is
    ("attach livepatch f\n\ufeffjump", "step '\\ufeffjump' is unknown"),
    ("attach livepatch f\x00", "function 'f\\x00' is not a C identifier"),
    ("attach livepatch f\u2028call f", "x.fts:1:"),                 # lines end at '\n' only
    ("attach " + "x" * 10_000 + " f", "..."),                       # long tokens are cut in messages
])
def test_bad_lines_are_one_line_errors(text, needle):
    with pytest.raises(scenario.ScenarioError) as e:
        parse(text)
    msg = str(e.value)
    assert needle in msg and msg.startswith("x.fts:") and "\n" not in msg and len(msg) < 1000


def test_a_utf8_bom_is_accepted_and_lines_count_from_it(tmp_path):
    path = tmp_path / "bom.fts"
    path.write_bytes(b"\xef\xbb\xbfattach livepatch f as lp => 0\r\ncall f => body=new\r\n")
    sc = scenario.parse_file(path)
    assert [s.op for s in sc.steps] == ["attach", "call"] and sc.steps[1].line == 2
    assert all(d["expect_ok"] for d in scenario.run(sc, policy.get("merged")))


def test_unknown_handle_message_is_bounded():
    text = "\n".join(f"attach ftrace-ops f as h{i}" for i in range(5000)) + "\ndetach nope"
    with pytest.raises(scenario.ScenarioError) as e:
        parse(text)
    assert "h0, h1" in str(e.value) and "(and 4,992 more)" in str(e.value) and len(str(e.value)) < 300


def test_default_handles_stay_linear():
    sc = parse("\n".join(["attach ftrace-ops f"] * 20_000 + ["attach ftrace-ops f as ftrace-ops-20002",
                                                              "attach ftrace-ops f"]))
    assert [s.handle for s in sc.steps[-3:]] == ["ftrace-ops-20000", "ftrace-ops-20002", "ftrace-ops-20001"]


def _special(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
        return path
    if kind == "dir":
        return tmp_path
    if kind == "big":
        path = tmp_path / "big.fts"
        with open(path, "wb") as f:
            f.truncate(scenario.MAX_BYTES + 1)               # sparse: costs nothing
        return path
    return kind


@pytest.mark.parametrize("kind, needle", [
    ("/dev/zero", "a character device"), ("/dev/urandom", "a character device"), ("/dev/null", "a character device"),
    ("fifo", "a FIFO"), ("dir", "a directory"), ("big", "bytes; allowed"), ("/nonexistent/x.fts", "cannot be read"),
    ("bad\x00name.fts", "cannot be read"),
])
def test_special_files_are_refused_without_reading(tmp_path, kind, needle):
    path = _special(tmp_path, kind)
    done = []
    t = threading.Thread(target=lambda: done.append(_err(lambda: scenario.parse_file(path))), daemon=True)
    t.start()
    t.join(5)
    assert done, f"parse_file({path!r}) hangs"
    assert isinstance(done[0], FtsimError) and needle in str(done[0]) and "\n" not in str(done[0])


def test_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.fts"
    path.write_bytes(b"# ok\nattach livepatch f\ncall caf\xe9\n")
    e = _err(lambda: scenario.parse_file(path))
    assert isinstance(e, FtsimError) and "not UTF-8 text (byte 0xe9 on line 3)" in str(e)


def test_non_utf8_and_special_files_exit_2_on_the_cli(tmp_path, capsys):
    from ftsim import cli
    bad = tmp_path / "bad.fts"
    bad.write_bytes(b"\xff\xfe")
    for path in (bad, "/dev/zero", tmp_path):
        assert cli.main(["scenario", str(path), "--policy", "merged"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ftsim: error: scenario file:") and err.count("\n") == 1


def _err(fn):
    try:
        fn()
    except Exception as e:          # noqa: BLE001
        return e
    return None


# -- the fuzzer ---------------------------------------------------------------------------------------

FUNCS = sorted(functions.known()) + ["f0", "f1", "some_function"]
HANDLES = ["lp", "fx", "kp", "h1", "h2", "a.b", "x-1"]
ERRNOS = ["0", "-EBUSY", "-EAGAIN", "-EINVAL", "-ENOENT", "-ERANGE", "-ENOTSUPP", "-16"]
FLAGS = ["", "I", "R", "RI", "RID", "RD", "IM", "RIDM", "D"]
SELECTORS = ["pre-6.0", "rostedt", "song", "merged", "naive", "merged<6.18", "merged>=6.7<6.18", "merged==6.1",
             "merged>=6.14"]
NASTY = ["²", "¹", "٦", "\ufeff", "\x00", "\u2028", "\x0c", "\r", "\t", " ", "=", ">", "=>", "[", "]", ",", "#",
         "-", ":", ".", "0", "9", "é", "\x85", "=>[", "=>[]", "=>[merged]"]
POLICIES = [("pre-6.0", None), ("rostedt", None), ("song", None), ("naive", None), ("merged", None),
            ("merged", "6.0"), ("merged", "6.1"), ("merged", "6.6.10"), ("merged", "6.14"), ("merged", "6.17")]


@st.composite
def expectation(draw, op):
    keys = ["ret", "regen", "retries", "callbacks", "record", "attached", "violations"] if op != "call" else \
        ["regen", "retries", "callbacks", "record", "violations", "body", "result", "fired"]
    toks = []
    for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)):
        if key == "ret":
            toks.append(draw(st.sampled_from(ERRNOS)))
        elif key in ("regen", "retries", "callbacks"):
            toks.append(f"{key}={draw(st.integers(0, 3))}")
        elif key == "record":
            toks.append(f"record={draw(st.integers(0, 3))}:{draw(st.sampled_from(FLAGS))}")
        elif key == "attached":
            toks.append(f"attached={draw(st.sampled_from(['yes', 'no']))}")
        elif key == "violations":
            v = draw(st.lists(st.sampled_from(list(scenario.INVARIANTS)), max_size=2, unique=True))
            toks.append(f"violations={','.join(v) or '-'}")
        elif key == "body":
            toks.append(f"body={draw(st.sampled_from(['orig', 'new', 'none']))}")
        elif key == "result":
            toks.append(f"result={draw(st.sampled_from(['orig'] + HANDLES))}")
        else:
            toks.append(f"fired={','.join(draw(st.lists(st.sampled_from(HANDLES), max_size=3))) or '-'}")
    groups = []
    if draw(st.booleans()):
        groups.append("=> " + " ".join(toks))
    for _ in range(draw(st.integers(0, 2))):
        sel = ",".join(draw(st.lists(st.sampled_from(SELECTORS), min_size=1, max_size=2)))
        groups.append(f"=>[{sel}] " + " ".join(toks[::-1]))
    return " ".join(groups)


@st.composite
def near_valid_scenario(draw):
    """A scenario that would parse (handles attached before detached, keys that apply to the step),
    then with probability 1/2 one to three mutations of its lines."""
    lines, live, n = [], [], 0
    if draw(st.booleans()):
        lines.append("# " + draw(st.sampled_from(["what it shows", "livepatch then fexit", ""])))
    for _ in range(draw(st.integers(1, 10))):
        op = draw(st.sampled_from(["attach", "attach", "attach", "detach", "call", "call", "blank"]))
        if op == "detach" and not live:
            op = "attach"
        if op == "attach":
            c, f = draw(st.sampled_from(consumers.NAMES)), draw(st.sampled_from(FUNCS))
            if draw(st.booleans()):
                n += 1
                h = f"h{n}"
                line = f"attach {c} {f} as {h}"
            else:
                h = c if c not in live and all(not x.startswith(c) for x in live) else None
                line = f"attach {c} {f}"
                if h is None:                   # default name taken: name it
                    n += 1
                    h = f"h{n}"
                    line += f" as {h}"
            live.append(h)
        elif op == "detach":
            h = draw(st.sampled_from(live))
            live.remove(h)
            line = f"detach {h}"
        elif op == "call":
            line = f"call {draw(st.sampled_from(FUNCS))}"
        else:
            lines.append(draw(st.sampled_from(["", "   ", "# a comment"])))
            continue
        exp = draw(expectation(op))
        if exp:
            line += "  " + exp
        if draw(st.integers(0, 4)) == 0:
            line += "   # why"
        lines.append(line)
    if draw(st.booleans()):
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(lines) - 1))
            lines[i] = draw(mutated(lines[i]))
    sep = draw(st.sampled_from(["\n", "\n", "\n", "\r\n"]))
    return ("\ufeff" if draw(st.sampled_from(range(10))) == 0 else "") + sep.join(lines)


@st.composite
def mutated(draw, line):
    how = draw(st.sampled_from(["insert", "delete", "replace", "swap", "dup", "digit", "truncate", "case"]))
    words = line.split(" ")
    if how == "insert":
        i = draw(st.integers(0, len(line)))
        return line[:i] + draw(st.sampled_from(NASTY)) + line[i:]
    if how == "delete" and line:
        i = draw(st.integers(0, len(line) - 1))
        return line[:i] + line[i + 1:]
    if how == "replace" and line:
        i = draw(st.integers(0, len(line) - 1))
        return line[:i] + draw(st.sampled_from(NASTY)) + line[i + 1:]
    if how == "swap" and len(words) > 1:
        i = draw(st.integers(0, len(words) - 2))
        words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)
    if how == "dup":
        i = draw(st.integers(0, len(words) - 1))
        return " ".join(words[:i + 1] + words[i:])
    digits = [i for i, w in enumerate(words) if any(ch.isascii() and ch.isdigit() for ch in w)]
    if how == "digit" and digits:          # one token's ASCII digits become other digits
        i = draw(st.sampled_from(digits))
        words[i] = words[i].translate(str.maketrans("0123456789", draw(st.sampled_from(
            ["٠١٢٣٤٥٦٧٨٩", "⁰¹²³⁴⁵⁶⁷⁸⁹", "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗", "9876543210", "0000000000"]))))
        return " ".join(words)
    if how == "truncate":
        return line[:draw(st.integers(0, len(line)))]
    return line.upper() if draw(st.booleans()) else line.replace("-", "_")


def _parse_and_run(text, pol, kernel, stats):
    sc = scenario.parse_text(text, "fuzz.fts")
    stats["parsed"] += 1
    rows = scenario.run(sc, policy.get(pol, kernel=kernel))
    assert len(rows) == len(sc.steps)
    stats["ran"] += bool(rows)
    stats["steps"] += len(rows)
    for d in rows:
        getattr(scenario, "format_row", lambda d, t: 0)(d, "")


def test_fuzz_near_valid_scenarios():
    tally = Tally("scenario text")

    @fuzz_settings(600)
    @given(near_valid_scenario(), st.sampled_from(POLICIES))
    def case(text, pk):
        tally.guard((text, pk), _parse_and_run, text, pk[0], pk[1], tally.extra)
    case()
    d = tally.check()
    assert tally.extra["ran"] >= 0.5 * tally.cases, d          # most examples run model steps
    assert tally.counts["error"] >= 0.1 * tally.cases, d       # and the mutations do reach the checks


def test_fuzz_arbitrary_bytes_in_a_file(tmp_path):
    tally = Tally("scenario bytes")
    path = tmp_path / "fuzz.fts"

    @fuzz_settings(300)
    @given(st.one_of(st.binary(max_size=300), st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
                     near_valid_scenario().map(lambda s: s.encode("utf-8", "surrogatepass"))))
    def case(data):
        def go():
            path.write_bytes(data)
            sc = scenario.parse_file(path)
            scenario.run(sc, policy.get("merged"))
        tally.guard(data, go)
    case()
    tally.check()
