"""The 2022 mailing-list thread "ftrace: host klp and bpf trampoline together" as tables and a timeline.

Data: ``data/thread/messages.csv`` (one row per message, paraphrased), ``versions.csv`` (the five
postings) and ``commits.csv`` (what was merged for 6.0 and the fixes that followed).  Every message is
cited by date, author, subject and Message-ID (on lore as ``https://lore.kernel.org/all/<Message-ID>/``);
subjects are normalised (list prefixes such as ``[PATCH v2 ...]`` dropped; the ``version`` and
``patch`` columns say which posting a message belongs to).  Where a source is incomplete the
``id_note`` column says so.

The ``position`` column places each message between the two designs argued over:

* ``song``       - the owner of a direct ops declares whether it can share (flag, flavours, -EAGAIN)
* ``rostedt``    - ftrace treats DIRECT like IPMODIFY and asks the owner through ``ops_func``
* ``compromise`` - a step of one toward the other
* ``merged``     - the hybrid that was merged (callback from Rostedt, -EAGAIN/rebuild loop from Song)
* ``neutral``    - review of mechanics (locking, tests, Cc lists)
"""
from __future__ import annotations

from .paths import DATA as _DATA

import pandas as pd

DATA = _DATA / "thread"
LORE = "https://lore.kernel.org/all/{}/"

#: position -> (lane on the timeline's y axis, colour)
POSITIONS = {
    "song": (2, "tab:blue"),
    "compromise": (1, "tab:purple"),
    "merged": (0, "tab:green"),
    "rostedt": (-1, "tab:red"),
    "neutral": (-2, "tab:gray"),
}
POSITION_LABELS = {
    "song": "Song: owner declares sharing",
    "compromise": "moving toward each other",
    "merged": "the merged hybrid",
    "rostedt": "Rostedt: ftrace asks the owner",
    "neutral": "mechanics (locks, tests, Cc)",
}


# -- DataFrame getters ----------------------------------------------------------------------------
def _read(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / name, dtype=str, keep_default_na=False)


def _when(text: str) -> pd.Timestamp:
    """'2022-07-14T00:38Z' -> that instant; a bare date -> the end of that day (file order breaks ties)."""
    if "T" in text:
        return pd.Timestamp(text.replace("Z", "+00:00")).tz_convert(None)
    return pd.Timestamp(text) + pd.Timedelta(hours=23, minutes=59)


def df_messages() -> pd.DataFrame:
    """One row per message of the thread, in the order sent (UTC).

    :returns: a DataFrame with:
      * ``when`` (Timestamp, UTC; a message known only by its date is placed at 23:59)
      * ``sent_as_given`` (the date and time as the mail header gives them)
      * ``author``, ``version`` (v1..v5), ``patch`` (``0/5`` = cover letter), ``kind``
        (cover, patch, review, reply, merge), ``subject`` (normalised)
      * ``message_id``, ``id_note`` (why an id is missing or partial), ``link`` (lore address)
      * ``position`` (see the module docstring), ``design_move`` (where the design moved; empty if not)
      * ``summary`` (a paraphrase, never the mail's words)
    """
    df = _read("messages.csv")
    df.insert(0, "when", df.pop("sent").map(_when))
    df["link"] = df["message_id"].map(lambda m: LORE.format(m) if m and "…" not in m else "")
    return df.sort_values("when", kind="stable").reset_index(drop=True)


def df_versions() -> pd.DataFrame:
    """The five postings of the series.

    :returns: a DataFrame indexed by ``version`` with ``when`` (UTC), ``sent_as_given``,
      ``cover_message_id``, ``patches`` (int), ``changes`` (paraphrase of the cover letter),
      ``design`` (``song`` or ``merged``: which design the posting implements) and ``messages``
      (how many messages of ``df_messages()`` belong to that version).
    """
    df = _read("versions.csv")
    df.insert(1, "when", df.pop("sent").map(_when))
    df["patches"] = df["patches"].astype(int)
    counts = df_messages()["version"].value_counts()
    df["messages"] = df["version"].map(counts).fillna(0).astype(int)
    return df.set_index("version")


def df_commits() -> pd.DataFrame:
    """The four commits merged for 6.0 (kind ``series``) and the later fixes.

    :returns: a DataFrame with ``commit`` (12-hex), ``date``, ``title``, ``author``, ``kind``
      (series, fix, rework, test), ``fixes`` (the commit it fixes), ``landed`` (release; "inferred"
      where not checked), ``what`` (paraphrase) and ``source`` (a Message-ID, may be empty).
    """
    return _read("commits.csv")


def df_design_moves() -> pd.DataFrame:
    """Only the messages where the design moved, with who moved it and toward which position."""
    df = df_messages()
    moves = df[df["design_move"] != ""]
    moves = moves[["when", "author", "version", "position", "design_move", "message_id"]].reset_index(drop=True)
    moves.index = pd.RangeIndex(1, len(moves) + 1, name="move")
    return moves


# -- Tables for reading -----------------------------------------------------------------------------
#: columns holding a Message-ID (linked to lore) or a commit (linked to git.kernel.org)
MESSAGE_ID_COLUMNS = ("message_id", "cover_message_id", "source")
COMMIT_COLUMNS = ("commit", "fixes")
NOWRAP_COLUMNS = ("when", "sent_as_given", "date", "version", "patch", "commit", "fixes", "author")
PROSE_COLUMNS = ("summary", "changes", "what", "design_move", "subject", "title")


def table(df: pd.DataFrame, **kw):
    """A table of this module (or any selection of its columns) for reading: Message-IDs link to
    lore.kernel.org, commits to git.kernel.org, times stay on one line, prose wraps, all left-aligned.
    Keyword arguments go to ``ftsim.plots.Table``."""
    from .plots import Table, commit, lore
    links = {c: lore for c in MESSAGE_ID_COLUMNS if c in df.columns}
    links.update({c: commit for c in COMMIT_COLUMNS if c in df.columns})
    nowrap = [c for c in NOWRAP_COLUMNS if c in df.columns]
    kw.setdefault("index", df.index.name is not None)
    return Table(df, links=links, nowrap=nowrap, prose=[c for c in PROSE_COLUMNS if c in df.columns],
                 breakable=[c for c in MESSAGE_ID_COLUMNS if c in df.columns], **kw)


# -- Plotting methods -----------------------------------------------------------------------------
def plot_timeline(until: str = "2022-08-05", zoom: tuple[str, str] = ("2022-07-13 20:00", "2022-07-16 00:00")):
    """The messages on a time axis, one lane per position; versions as dashed vertical lines.

    Top: the whole thread up to ``until``; bottom: a zoom on the days where the design moved.
    Markers: circle = review or reply, square = patch or cover letter, star = merge notice.
    Numbers label the rows of ``df_design_moves()`` (1 = first).  Returns the matplotlib Figure.
    """
    df = df_messages()
    df = df[df["when"] <= pd.Timestamp(until)]
    return _plot_timeline(df, df_versions(), zoom)


def _plot_timeline(df: pd.DataFrame, versions: pd.DataFrame, zoom):
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), layout="constrained")
    lo, hi = pd.Timestamp(zoom[0]), pd.Timestamp(zoom[1])
    _draw_lanes(top, df, versions, span=df["when"].max() - df["when"].min())
    top.axvspan(lo, hi, color="gold", alpha=0.25, zorder=0)
    top.xaxis.set_major_locator(mdates.WeekdayLocator(byweekday=mdates.MO))
    top.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    top.set_title("ftrace: host klp and bpf trampoline together (2022): who argued for what, and when")
    top.set_xlabel("2022 (UTC); shaded: the zoom below")
    _draw_lanes(bottom, df[(df["when"] >= lo) & (df["when"] <= hi)], versions[(versions["when"] >= lo)
                                                                               & (versions["when"] <= hi)],
                numbers=True, span=hi - lo)
    bottom.set_xlim(lo, hi)
    bottom.xaxis.set_major_locator(mdates.HourLocator(byhour=[0, 6, 12, 18]))
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%d %b %H:%M"))
    bottom.set_title("13-15 July: the design moves (numbers = rows of df_design_moves())")
    bottom.set_xlabel("UTC")
    return fig


def _close_groups(times, span, gap=0.02):
    """Consecutive times closer than ``gap`` of ``span`` grouped together (for labels that would overlap)."""
    groups = []
    for t in times:
        if groups and (t - groups[-1][-1]) / span < gap:
            groups[-1].append(t)
        else:
            groups.append([t])
    return groups


def _draw_lanes(ax, df, versions, numbers=False, span=None):
    markers = {"cover": "s", "patch": "s", "review": "o", "reply": "o", "merge": "*"}
    for pos, (lane, colour) in POSITIONS.items():
        sub = df[df["position"] == pos]
        for kind, marker in markers.items():
            part = sub[sub["kind"] == kind]
            if len(part):
                ax.scatter(part["when"], [lane] * len(part), marker=marker, s=90 if marker == "*" else 40,
                           color=colour, edgecolor="black", linewidth=0.4, zorder=3)
    span = span or ((df["when"].max() - df["when"].min()) if len(df) else pd.Timedelta(days=1))
    names = list(versions.index)
    whens = list(versions["when"])
    for when in whens:
        ax.axvline(when, color="0.6", linestyle="--", linewidth=0.8, zorder=1)
    # versions posted within hours of each other (v1/v2, v3/v4 at the scale of two months) share one label
    i = 0
    for group in _close_groups(whens, span):
        label = "/".join(names[i:i + len(group)])
        ax.text(group[0] + (group[-1] - group[0]) / 2, 2.45, label, ha="center", va="bottom", fontsize=8)
        i += len(group)
    if numbers:
        all_moves = df_design_moves()
        shown = all_moves[all_moves["when"].isin(set(df["when"]))]
        for pos, g in shown.groupby("position", sort=False):
            lane = POSITIONS[pos][0]
            level, last = 0, None
            for i, row in g.sort_values("when").iterrows():
                level = level + 1 if last is not None and (row["when"] - last) / span < 0.025 else 0
                last = row["when"]
                ax.annotate(str(i), (row["when"], lane), xytext=(0, 8 + 10 * level), textcoords="offset points",
                            ha="center", fontsize=8)
    ax.set_yticks([lane for lane, _ in POSITIONS.values()], [POSITION_LABELS[p] for p in POSITIONS])
    ax.set_ylim(-2.6, 3.0)
    ax.grid(axis="x", color="0.92")
