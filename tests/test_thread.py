"""The 2022 thread as data: every message cited, positions marked, the timeline drawn from the data."""
import re

import matplotlib
import pandas as pd
import pytest

from ftsim import thread

matplotlib.use("Agg")
MSG_ID = re.compile(r"[^\s<>@]+@[^\s<>@]+\Z")


@pytest.fixture(scope="module")
def msgs():
    return thread.df_messages()


def test_messages_columns_and_order(msgs):
    for col in ("when", "sent_as_given", "author", "version", "patch", "kind", "subject", "message_id",
                "id_note", "position", "design_move", "summary", "link"):
        assert col in msgs.columns
    assert msgs["when"].is_monotonic_increasing
    assert len(msgs) >= 35


def test_every_message_is_cited(msgs):
    for _, m in msgs.iterrows():
        assert m["author"] and m["subject"] and m["sent_as_given"][:4] == "2022", m.to_dict()
        if m["message_id"]:
            assert MSG_ID.match(m["message_id"]) or m["id_note"], m["message_id"]
        else:
            assert m["id_note"], f"{m['when']} {m['author']}: no Message-ID and no note saying why"
        if "…" in m["message_id"]:
            assert "incomplete" in m["id_note"]
    ids = msgs.loc[msgs["message_id"] != "", "message_id"]
    assert ids.is_unique


def test_links_point_to_lore(msgs):
    full = msgs[(msgs["message_id"] != "") & ~msgs["message_id"].str.contains("…")]
    assert (full["link"] == "https://lore.kernel.org/all/" + full["message_id"] + "/").all()


def test_positions_and_design_moves(msgs):
    assert set(msgs["position"]) <= set(thread.POSITIONS)
    moves = thread.df_design_moves()
    assert list(moves.index) == list(range(1, len(moves) + 1))
    assert {"song", "rostedt", "compromise", "merged"} <= set(moves["position"])
    # Song's reply of 2022-07-13 (the brief's message) and Rostedt's compromise are both marked
    assert "C2FCCC9B-5F7D-4BBF-8410-67EA79166909@fb.com" in set(moves["message_id"])
    assert "20220715155953.4fb692e2@gandalf.local.home" in set(moves["message_id"])
    assert moves["design_move"].str.len().min() > 20


def test_paraphrased_not_quoted(msgs):
    for text in msgs["summary"]:
        assert not re.search(r"^\s*>|\bwrote:", text, re.M), text
        assert len(text.split()) <= 90


def test_versions_and_covers(msgs):
    v = thread.df_versions()
    assert list(v.index) == ["v1", "v2", "v3", "v4", "v5"]
    assert list(v["patches"]) == [5, 5, 4, 4, 4]
    assert set(v["cover_message_id"]) <= set(msgs["message_id"])
    assert v["when"].is_monotonic_increasing
    assert v["messages"].sum() == (msgs["version"].isin(v.index)).sum()


def test_commits_merged_for_6_0():
    c = thread.df_commits()
    series = c[c["kind"] == "series"]
    assert list(series["commit"]) == ["f96f644ab97a", "53cd885bc5c3", "316cba62dfb7", "00963a2e75a8"]
    assert (series["landed"] == "v6.0").all()
    assert c["commit"].str.fullmatch(r"[0-9a-f]{12}").all()


def test_timeline_is_drawn_from_the_data(msgs):
    fig = thread.plot_timeline()
    top, bottom = fig.axes
    shown = msgs[msgs["when"] <= pd.Timestamp("2022-08-05")]
    points = sum(len(col.get_offsets()) for col in top.collections)
    assert points == len(shown)
    assert "2022" in top.get_title() and "13-15 July" in bottom.get_title()
    assert [t.get_text() for t in top.get_yticklabels()] == [thread.POSITION_LABELS[p] for p in thread.POSITIONS]
    labels = {v for t in top.texts for v in t.get_text().split("/")}
    assert {"v1", "v2", "v3", "v4", "v5"} <= labels
    numbers = {t.get_text() for t in bottom.texts if t.get_text().isdigit()}
    zoom = thread.df_design_moves()
    in_zoom = zoom[(zoom["when"] >= pd.Timestamp("2022-07-13 20:00")) & (zoom["when"] <= pd.Timestamp("2022-07-16"))]
    assert numbers == {str(i) for i in in_zoom.index}
    matplotlib.pyplot.close(fig)


def test_tables_link_message_ids_and_commits(msgs):
    html = thread.table(msgs[["when", "author", "message_id", "summary"]])._repr_html_()
    linked = msgs[msgs["link"] != ""]
    for link in linked["link"]:
        assert f'href="{link}"' in html
    assert html.count("lore.kernel.org/all/") == len(linked)
    assert ">2022-07-14 01:42</td>" in html                     # one line, minutes
    commits = thread.table(thread.df_commits())._repr_html_()
    assert "linux.git/commit/?id=53cd885bc5c3" in commits and "lore.kernel.org/all/20251027175023" in commits


def test_timeline_labels_do_not_overlap():
    fig = thread.plot_timeline()
    top, bottom = fig.axes
    assert [t.get_text() for t in top.texts] == ["v1/v2", "v3/v4", "v5"]
    fig.canvas.draw()
    boxes = [(t.get_text(), t.get_window_extent()) for t in bottom.texts]
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1:]:
            assert not ba.overlaps(bb), (a, b)
