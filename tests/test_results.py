"""Stored results (ftsim.results): what is read back equals what was computed, and nothing planted or
tampered with is ever used."""
import json
import os

import pandas as pd
import pytest

from ftsim import designs, policy, results


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FTSIM_CACHE", str(tmp_path))
    return tmp_path


def _one(cache):
    (path,) = cache.glob("result-*.json")
    return path


def test_a_decision_table_reads_back_equal_with_its_dtypes(cache):
    df = designs.df_decisions(policy.get("song"))
    assert results.stored("d", lambda: df) is df
    back = results.stored("d", lambda: pytest.fail("recomputed"))
    pd.testing.assert_frame_equal(back, df)


def test_a_tampered_result_is_recomputed_with_a_notice(cache, capsys):
    results.stored("t", lambda: {"livepatch": "0"})
    path = _one(cache)
    mac, body = path.read_bytes().split(b"\n", 1)
    doc = json.loads(body)
    doc["value"]["livepatch"] = "-EBUSY"
    path.write_bytes(mac + b"\n" + json.dumps(doc, sort_keys=True).encode())
    assert results.stored("t", lambda: {"livepatch": "0"}) == {"livepatch": "0"}
    assert "HMAC does not match" in capsys.readouterr().err


def test_a_group_writable_or_symlinked_result_is_not_read(cache, capsys):
    results.stored("g", lambda: {"a": "1"})
    path = _one(cache)
    os.chmod(path, 0o664)
    assert results.stored("g", lambda: {"a": "2"}) == {"a": "2"}
    assert "writable by group or others" in capsys.readouterr().err
    target = cache / "elsewhere.json"
    path.replace(target)
    path.symlink_to(target)
    assert results.stored("g", lambda: {"a": "3"}) == {"a": "3"}


def test_an_exploration_reads_back_with_the_same_findings(cache):
    from ftsim import explore
    run = lambda: [explore.explore(policy.get("merged", kernel="6.1.192"), max_len=3)]      # noqa: E731
    first = results.stored("e", run)
    (back,) = results.stored("e", lambda: pytest.fail("recomputed"))
    assert back == first[0] and back.policy == policy.get("merged", kernel="6.1.192")
    assert back.scenario_text("NoSilentBypass") == first[0].scenario_text("NoSilentBypass")


def test_what_cannot_be_stored_is_returned_and_not_written(cache):
    thing = object()
    assert results.stored("x", lambda: thing) is thing
    frame = pd.DataFrame({"multiset": [("livepatch", "bpf-fexit")]})      # a tuple comes back a list
    assert results.stored("f", lambda: frame) is frame
    assert list(cache.glob("result-*")) == []
