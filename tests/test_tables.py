"""Decision tables, policy tables, the consumer catalog and data/kernel/rules.csv."""
import csv
import importlib
from pathlib import Path

from ftsim import consumers, policy, tables

DATA = Path(__file__).resolve().parent.parent / "data"


def test_every_rule_points_at_model_code_that_exists():
    with open(DATA / "kernel" / "rules.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 20
    for row in rows:
        module, _, attr = row["model"].rpartition(".")
        target = importlib.import_module(module) if not module.endswith("Record") else None
        if target is None:
            target = getattr(importlib.import_module(module.rsplit(".", 1)[0]), "Record")
        assert hasattr(target, attr), row["model"]
        assert row["kernel_file"] and row["kernel_function"] and row["versions"]


def test_decision_table_is_complete_and_shows_the_designs_apart():
    df = tables.df_decisions_all()
    sizes = {p.label: len(consumers.available(p)) for p in policy.all_policies()}
    assert df.groupby("policy", sort=False).size().to_dict() == {k: n * n for k, n in sizes.items()}
    M = policy.get("merged").label                     # "merged 7.3"
    pick = df.set_index(["policy", "incumbent", "contender"])
    assert pick.loc[("pre-6.0", "livepatch", "bpf-fexit"), "result"] == "-EBUSY"
    assert pick.loc[(M, "livepatch", "bpf-fexit"), "result"] == "0"
    assert pick.loc[("naive", "livepatch", "kprobe-post"), "violations"] == "AtMostOneIPModify"
    for pol in ("pre-6.0", "rostedt", "song"):
        assert pick.loc[(pol, "livepatch", "kprobe-post"), "result"] == "-EBUSY"
    # merged at the newest kernel: register_kprobe() drops the -EBUSY (6.14+): told 0, nothing armed
    lp_kp = pick.loc[(M, "livepatch", "kprobe-post")]
    assert (lp_kp["result"], lp_kp["violations"]) == ("0", "ToldImpliesAttached")
    old = tables.df_decisions(policy.get("merged", kernel="6.1")).set_index(["incumbent", "contender"])
    assert old.loc[("livepatch", "kprobe-post"), "result"] == "-EBUSY"
    grid = tables.grid(df[df.policy == M])
    assert list(grid.index) == list(consumers.NAMES) == list(grid.columns)     # 7.3 has every consumer
    # pre-6.0 has no tracing_multi links: its grid leaves them out
    assert "bpf-fentry-multi" not in set(df[df.policy == "pre-6.0"].contender)


def test_policies_print_side_by_side():
    t = policy.df_policies()
    assert list(t.columns) == ["meaning", *(p.label for p in policy.all_policies())]
    assert t.loc["arbitration", policy.get("merged").label] == "ops_func" and t.loc["direct_carries_ipmodify", "pre-6.0"]
    assert t["meaning"].str.len().min() > 10
    old, new = policy.get("merged", kernel="6.1"), policy.get("merged")
    assert not old.modify_path_checked and new.modify_path_checked
    assert policy.get("merged", kernel="6.12").retry_leaves_stale_direct
    assert not policy.get("merged", kernel="6.6.9").retry_leaves_stale_direct


def test_catalog_names_and_table():
    # 16 consumers on every kernel, three more (the tracing_multi and fsession links) on 7.2 and later
    assert len(consumers.available(policy.get("merged", kernel="6.12.117"))) == 16
    assert len(consumers.available(policy.get("merged", kernel="7.2.13"))) == len(consumers.NAMES) == 19
    df = consumers.df_catalog()
    assert set(df.consumer) == set(consumers.NAMES)
    row = df.set_index("consumer").loc["bpf-override-return"]
    assert row["ops"] == "kprobe_ftrace_ops" and "IPMODIFY" not in row["flags"]
