"""The model's rules (``data/kernel/rules.csv``) and where each lives in the kernel, linked for reading."""
from __future__ import annotations

import re

import pandas as pd

from .paths import DATA


# -- The rules and where they live in the kernel -----------------------------------------------------

def df_rules() -> pd.DataFrame:
    """Every modelled rule, from ``data/kernel/rules.csv``.

    :returns: a DataFrame with ``rule`` (what the kernel does), ``kernel_function`` (one or more, ``/``
      between them, a commit in parentheses), ``kernel_file`` (``;`` between files), ``versions`` and
      ``model`` (the ftsim function that carries the rule).
    """
    return pd.read_csv(DATA / "kernel" / "rules.csv", dtype=str, keep_default_na=False)


_IDENT = re.compile(r"\b([0-9a-f]{12})\b|\b([A-Za-z_][A-Za-z0-9_]*_[A-Za-z0-9_]*)\b")
_FILE = re.compile(r"[\w./-]+\.[ch]\b")


def _kernel_tag(versions: str) -> str | None:
    """The kernel tag to read a rule at: v5.19 for rules of kernels before 6.0, else the newest."""
    return "v5.19" if versions.strip().startswith("<6.0") else None


def _link_idents(text: str, tag: str | None) -> str:
    import html as H

    from .plots import commit, source_function

    def one(m):
        sha, ident = m.group(1), m.group(2)
        href = commit(sha) if sha else source_function(ident, tag or "latest")
        return f'<a href="{H.escape(href)}" target="_blank" rel="noopener"><code>{H.escape(m.group(0))}</code></a>'
    return _IDENT.sub(one, H.escape(text))


def _link_files(text: str, tag: str | None) -> str:
    import html as H

    from .plots import source_file
    return _FILE.sub(lambda m: f'<a href="{H.escape(source_file(m.group(0), tag))}" target="_blank" '
                               f'rel="noopener"><code>{m.group(0)}</code></a>', H.escape(text))


def rules_table(df: pd.DataFrame | None = None):
    """``df_rules()`` for reading: each kernel function linked to where it is defined (Elixir, at the
    kernel the rule is about), each file to git.kernel.org, each commit to its page."""
    from .plots import Table
    df = df_rules() if df is None else df
    shown = df.copy()
    tags = [_kernel_tag(v) for v in df["versions"]]
    shown["kernel_function"] = [_link_idents(t, g) for t, g in zip(df["kernel_function"], tags)]
    shown["kernel_file"] = [_link_files(t, g) for t, g in zip(df["kernel_file"], tags)]
    shown["versions"] = [_link_idents(t, None) if re.search(r"[0-9a-f]{12}", t) else t for t in df["versions"]]
    return Table(shown, raw=("kernel_function", "kernel_file", "versions"), code=("model",), index=False,
                 plain=df)
