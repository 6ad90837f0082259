"""`make bench` runs end to end (at a toy size here; the figures themselves are quoted in the README)."""
import re

from ftsim import batch, bench


def test_bench_prints_every_figure_at_a_small_size(monkeypatch, capsys):
    monkeypatch.setenv("FTSIM_CACHE", "off")          # main() sets it too; monkeypatch restores it
    monkeypatch.setattr(batch, "TABLES", {})          # the first pass must discover, as in `make bench`
    for name, value in (("WORKLOADS", 40), ("CHUNK", 20), ("EVENTS", 50), ("REPEATS", 1), ("EXPLORE_LEN", 2)):
        monkeypatch.setattr(bench, name, value)
    assert bench.main() == 0
    out = capsys.readouterr().out
    assert re.search(r"first run \(discovers [1-9]\d* states, [1-9]\d* transitions\)", out)
    for what in (r"batch / bare = \d+\.\d\dx", r"batch / loop = \d+\.\d\dx", r"reference engine: [\d,]+ events/s",
                 r"widget-sized run .*: \d\.\d{3} s", r"= \d+\.\d MiB per million events",
                 r"explorer, 3 functions, length 2, 5 consumers, every design: \d+\.\d s CPU"):
        assert re.search(what, out), what
