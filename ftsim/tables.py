"""Decision tables: every ordered pair of consumers on one function, under one or more policies."""
from __future__ import annotations

import pandas as pd

from . import consumers
from .flags import Errno
from .model import Model
from .policy import Policy, all_policies

PAIR_FUNCTION = "func"   # not in data/kernel/functions.csv: every consumer may attach


def df_decisions(pol: Policy, names=None, function: str = PAIR_FUNCTION) -> pd.DataFrame:
    """One row per (incumbent, contender): the contender's attach as its caller sees it, the record,
    what a call then does, and the invariants broken.  ``names``: default, every consumer the policy's
    kernel has (``consumers.available``).

    :returns: a DataFrame with columns ``policy, incumbent, contender, ret, result, callbacks, retries,
      regenerations, record, attached, body_ran, result_from, violations``.
    """
    names = consumers.available(pol) if names is None else names
    for n in names:
        consumers.check_available(n, pol)
    rows = []
    for inc in names:
        for con in names:
            m = Model(pol)
            first = m.attach(inc, function, "A")
            second = m.attach(con, function, "B")
            call = m.call(function)
            rec = second.record
            rows.append({
                "policy": pol.label, "incumbent": inc, "contender": con,
                "ret": second.ret, "result": Errno.name_of(second.ret),
                "callbacks": second.callbacks, "retries": second.retries,
                "regenerations": second.regenerations,
                "record": f"{rec['count']}:{rec['flags']}", "attached": second.attached,
                "body_ran": call.call.body_ran, "result_from": call.call.result_from,
                "violations": ",".join(sorted(set(first.violations + second.violations + call.violations))),
            })
    return pd.DataFrame(rows)


def df_decisions_all(policies=None, names=None) -> pd.DataFrame:
    return pd.concat([df_decisions(p, names) for p in (policies or all_policies())], ignore_index=True)


def grid(df: pd.DataFrame, value: str = "result") -> pd.DataFrame:
    """Incumbent x contender grid of one column (a violated pair gets a trailing '!')."""
    cell = df[value].astype(str) + df["violations"].map(lambda v: "!" if v else "")
    g = df.assign(cell=cell).pivot(index="incumbent", columns="contender", values="cell")
    order = list(dict.fromkeys(df["incumbent"]))
    return g.loc[order, order]
