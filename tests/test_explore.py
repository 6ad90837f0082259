"""The exhaustive explorer: hand-counted state spaces, known shortest counterexamples on small custom
policies, canonical state keys, the shipped counterexample files, order sensitivity and the CLI."""
import re
from pathlib import Path

import pytest

from ftsim import explore as E, policy, scenario
from ftsim.cli import main
from ftsim.errors import FtsimError
from ftsim.model import Model

F = E.FUNCTIONS[0]
FOUND = sorted(E.FOUND_DIR.glob("*.fts"))


def test_state_space_counted_by_hand():
    # one kprobe with a post_handler, pre-6.0: states {empty, one probe, two aggregated probes};
    # from empty: attach, call (2 steps); from one probe: attach, detach, call (3 steps)
    ex = E.explore(policy.get("pre-6.0"), ["kprobe-post"], max_len=2)
    assert (ex.states, ex.transitions) == (3, 5)
    assert ex.states_by_len == [1, 2, 3]
    assert ex.sequences == 1 + 2 + (3 + 2)        # length 0, 1, 2 (empty -call-> empty: 2 more)
    assert ex.counterexamples() == {}


def test_custom_policy_known_answer():
    # merged without the modify-path check is the 6.0-6.17 bypass: livepatch, fentry, then fexit
    pol = policy.get("merged", kernel="6.12.117", modify_path_checked=False)    # 3e9a18e1c3e9 reverted
    ex = E.explore(pol, ["livepatch", "bpf-fentry", "bpf-fexit"], max_len=3)
    cex = ex.counterexamples()
    assert list(cex) == ["NoSilentBypass"]
    assert [E._line(d) for d in cex["NoSilentBypass"]] == [
        f"attach livepatch {F} as lp", f"attach bpf-fentry {F} as fe", f"attach bpf-fexit {F} as fx"]
    assert cex["NoSilentBypass"][-1]["path"] == "modify_fentry"
    # the same consumers with the check in place: nothing breaks up to length 4
    assert E.explore(policy.get("merged", kernel="6.12.117"), ["livepatch", "bpf-fentry", "bpf-fexit"],
                     max_len=4).counterexamples() == {}


def test_naive_two_ipmodify_at_length_two():
    ex = E.explore(policy.get("naive"), ["livepatch", "kprobe-post"], max_len=2)
    rows = ex.counterexamples()["AtMostOneIPModify"]
    assert len(rows) == 2 and rows[0]["consumer"] != rows[1]["consumer"]
    # two livepatches stack on one klp_ops: alone they never break it
    assert "AtMostOneIPModify" not in E.explore(policy.get("naive"), ["livepatch"], max_len=3).counterexamples()


def test_state_key_ignores_handle_names_and_keeps_order():
    a, b = Model(policy.get("merged")), Model(policy.get("merged"))
    a.attach("bpf-fentry", F, "x"); a.attach("bpf-fexit", F, "y")
    b.attach("bpf-fentry", F, "p"); b.attach("bpf-fexit", F, "q")
    assert E.state_key(a) == E.state_key(b)
    c = Model(policy.get("merged"))
    c.attach("bpf-fexit", F, "q"); c.attach("bpf-fentry", F, "p")
    assert E.state_key(a) != E.state_key(c)           # program order on the trampoline differs
    d = Model(policy.get("merged"))
    d.attach("kprobe", F, "k"); d.detach("k")              # the unused shared kprobe ops is no state
    assert E.state_key(d) == E.state_key(Model(policy.get("merged")))
    d.attach("kprobe-post", F, "k2"); d.detach("k2")        # but the sticky M of 6.4+ is
    assert E.state_key(d) != E.state_key(Model(policy.get("merged")))


def test_bad_input():
    with pytest.raises(FtsimError):
        E.explore(policy.get("merged"), ["nope"])
    with pytest.raises(FtsimError):
        E.explore(policy.get("merged"), functions=4)
    with pytest.raises(FtsimError):                         # a consumer this kernel does not have
        E.explore(policy.get("merged", kernel="6.12.117"), ["bpf-fentry-multi"])


def _policy_of(path):
    """The policy a found file is written for: its Run line's design, its header's kernel and sets."""
    name = re.search(r"--policy (\S+)", path.read_text())[1]
    return name, scenario.parse_file(path).policy(name)


def test_found_files_exist_for_every_design():
    names = {p.name.split("--")[0] for p in FOUND}
    assert {"pre-6.0", "rostedt", "song", "merged-7.3", "merged-6.1.192", "merged-6.12.117", "merged-7.2.13",
            "naive", "2fn-merged-7.3", "3fn-merged-7.3"} <= names
    # the bugs, found unaided: the 6.1.160+ ftrace kill, the 7.x cross-function WARN
    assert {"merged-6.1.192--FtraceAlive.fts", "merged-6.1.192--NoWarn.fts", "3fn-merged-7.3--NoWarn.fts"} <= {
        p.name for p in FOUND}


@pytest.mark.parametrize("path", FOUND, ids=[p.stem for p in FOUND])
def test_found_file_runs_and_is_shortest(path):
    name, pol = _policy_of(path)
    inv = path.stem.split("--")[1]
    rows = scenario.run(scenario.parse_file(path), pol)
    assert all(d["expect_ok"] for d in rows), [d["failures"] for d in rows]
    assert inv in rows[-1]["violations"]
    assert all(inv not in d["violations"] for d in rows[:-1])
    consumers = re.search(r"consumers (.*?);", path.read_text())[1].split(", ")
    nfun = int(path.name[0]) if path.name[1:4] == "fn-" else 1
    shorter = E.explore(pol, consumers, functions=nfun, max_len=len(rows) - 1)
    if "--via-" in path.stem:                      # shortest among sequences breaking it on that path
        via = path.stem.split("--via-")[1].replace("-", "_")
        assert (inv, via) not in shorter.shortest
    else:
        assert inv not in shorter.counterexamples()
    assert main(["scenario", str(path), "--policy", name]) == 0


def test_found_file_is_what_the_code_writes(tmp_path):
    ex = E.explore(policy.get("merged"), E.PEER_GAP_CONSUMERS, functions=2, max_len=3)
    written = ex.write_scenarios(tmp_path, prefix="2fn-")
    for p in written:
        assert p.read_text() == (E.FOUND_DIR / p.name).read_text()


def test_counterexample_frame_columns():
    ex = E.explore(policy.get("merged", kernel="6.1.159"), ["livepatch", "bpf-fentry", "bpf-fexit"], max_len=3)
    df = ex.df_counterexamples()
    doc = E.Exploration.df_counterexamples.__doc__
    assert list(df.columns) == re.findall(r"\* ``(\w+)``", doc)
    assert df["length"].tolist() == [3, 3, 3] and df["violations"].iloc[-1] == "NoSilentBypass"


def test_order_sensitivity_known_pairs():
    df = E.df_order_sensitivity(policy.get("pre-6.0"), ["livepatch", "kprobe-post", "bpf-fentry"], max_size=2)
    row = df.set_index("multiset").loc
    assert not row["livepatch"]["sensitive"]
    # two IPMODIFY: whichever comes second is refused
    assert row["livepatch+kprobe-post"]["sensitive"] and row["livepatch+kprobe-post"]["refusal_sets"] == 2
    merged = E.df_order_sensitivity(policy.get("merged"), ["livepatch", "bpf-fentry"], max_size=2)
    assert not merged["sensitive"].any()
    fig = E.plot_order_sensitivity(df)
    # pre-6.0 direct ops carry IPMODIFY: lp+kp, lp+fe, kp+fe are sensitive, the doubles are not
    assert row["kprobe-post+bpf-fentry"]["sensitive"] and not row["bpf-fentry+bpf-fentry"]["sensitive"]
    assert [p.get_height() for p in fig.axes[0].patches] == [0.0, 0.5]


def test_cli_explore(tmp_path, capsys):
    assert main(["explore", "--policy", "merged", "--kernel", "6.1.159", "--max-len", "3",
                 "--consumers", "livepatch", "bpf-fentry", "bpf-fexit", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "NoSilentBypass" in out and "states" in out
    assert [p.name for p in tmp_path.glob("*.fts")] == ["merged-6.1.159--NoSilentBypass.fts"]
    assert main(["explore", "--policy", "merged", "--out", str(tmp_path / "no" / "such")]) == 2   # before the search
    assert main(["explore", "--policy", "merged", "--kernel", "6.12.117", "--consumers", "bpf-fsession"]) == 2
    assert main(["explore", "--policy", "merged", "--max-len", "99"]) == 2


def _doc_columns(fn):
    import re as _re
    return _re.findall(r"``(\w+)``", fn.__doc__.split(":returns:")[1])


def test_frames_match_their_docstrings():
    ex = E.explore(policy.get("merged", kernel="6.1"), ["livepatch", "bpf-fentry", "bpf-fexit"], max_len=3)
    assert list(E.df_summary([ex]).columns) == _doc_columns(E.df_summary)
    order = E.df_order_sensitivity(policy.get("merged"), ["livepatch", "bpf-fexit"], max_size=2)
    assert list(order.columns) == [c for c in _doc_columns(E.df_order_sensitivity) if c != "a"]
    shortest = ex.df_shortest()
    assert set(shortest.columns) == set(_doc_columns(E.Exploration.df_shortest))


def test_cli_two_functions(capsys):
    assert main(["explore", "--policy", "merged", "--max-len", "3", "--functions", "2",
                 "--consumers", *E.PEER_GAP_CONSUMERS]) == 0
    assert "__x64_sys_getpid as ff" in capsys.readouterr().out


BRUTE = [("merged", "6.1.159", ("livepatch", "bpf-fentry", "bpf-fexit", "bpf-override-return"), 1, 3),
         ("merged", "6.1.192", ("livepatch", "bpf-fentry", "bpf-fexit"), 1, 4),             # the ftrace kill
         ("pre-6.0", None, ("livepatch", "kprobe-post", "bpf-fexit"), 2, 3),               # functions renamed
         ("merged", "6.12.117", ("kprobe-post", "fail-function", "bpf-fexit"), 2, 3),
         ("merged", "7.3", ("kprobe-post", "livepatch", "bpf-fexit"), 3, 3),               # address order kept
         ("merged", "7.3", ("kprobe-post", "bpf-fentry", "bpf-fexit"), 2, 4)]


@pytest.mark.parametrize("name,kernel,cons,nfun,depth", BRUTE, ids=[f"{b[0]}-{b[1]}-{b[3]}fn-{b[4]}" for b in BRUTE])
def test_dedupe_agrees_with_brute_force(name, kernel, cons, nfun, depth):
    """Every raw sequence, no state merging: same sequence count, same shortest length per invariant."""
    import pickle
    pol = policy.get(name, kernel=kernel)
    funcs = E.FUNCTIONS[:nfun]
    best, count = {}, 0

    def walk(m, d):
        nonlocal count
        count += 1
        if d == depth:
            return
        blob = pickle.dumps(m)
        for act in E.actions(m, cons, funcs):
            m2 = pickle.loads(blob)
            row = E.apply(m2, act)
            for inv in row["violations"]:
                best[inv] = min(best.get(inv, 99), d + 1)
            walk(m2, d + 1)

    walk(Model(pol), 0)
    ex = E.explore(pol, cons, functions=nfun, max_len=depth)
    assert ex.sequences == count
    assert {inv: len(rows) for inv, rows in ex.counterexamples().items()} == best
