"""The command line explains itself: complete help for `scenario` and `table`, examples that run as
written, a legend under `ftsim table`, and README commands that work."""
import argparse
import re
import shlex
from pathlib import Path

import pytest

from ftsim import cli

ROOT = Path(__file__).resolve().parent.parent


def _parser():
    parser = argparse.ArgumentParser(prog="ftsim")
    sub = parser.add_subparsers(dest="command")
    cli.add_command(sub)
    return sub.choices


@pytest.mark.parametrize("command", ["scenario", "table"])
def test_every_option_has_help_and_the_epilog_has_examples(command):
    p = _parser()[command]
    for action in p._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and len(action.help) > 15, f"{command} {action.option_strings or action.dest}: no help"
    assert "examples:" in p.epilog and f"ftsim {command} " in p.epilog


def _examples(text: str) -> list[list[str]]:
    """`ftsim ...` lines of a help epilog or a README code block, without redirections or comments."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"(?:\.venv/bin/)?ftsim (.+)", line)
        if m:
            cmd = re.split(r"\s[>|]|\s+#", m[1])[0]
            out.append(shlex.split(cmd))
    return out


def _run(argv, monkeypatch, capsys):
    import glob
    monkeypatch.chdir(ROOT)
    expanded = [a for arg in argv for a in (sorted(glob.glob(arg)) if "*" in arg else [arg])]
    code = cli.main(expanded)
    return code, capsys.readouterr()


@pytest.mark.parametrize("command", ["scenario", "table"])
def test_epilog_examples_run(command, monkeypatch, capsys):
    examples = _examples(_parser()[command].epilog)
    assert examples
    for argv in examples:
        code, out = _run(argv, monkeypatch, capsys)
        assert code == 0, (argv, out.err[-500:])


def test_top_level_help_is_whole_sentences_with_examples(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    description = out.split("\n\n")[1]
    assert description.rstrip().endswith("."), description
    assert "examples:" in out and ".venv/bin/ftsim" in out


def test_table_prints_a_legend(monkeypatch, capsys):
    code, out = _run(["table", "--policy", "merged", "--consumers", "key"], monkeypatch, capsys)
    assert code == 0
    grid, legend = out.out.split("legend:")
    assert "0!" in grid and "0! = the contender was told 0, yet an invariant broke" in legend
    assert len(grid.splitlines()[0]) < 130             # the key consumers fit a terminal
    code, out = _run(["table", "--policy", "merged", "--value", "body_ran", "--consumers", "livepatch,bpf-fexit"],
                     monkeypatch, capsys)
    assert "orig (the original function)" in out.out and out.out.splitlines()[0].split() == [
        "contender", "livepatch", "bpf-fexit"]


def test_table_rejects_an_unknown_consumer(monkeypatch, capsys):
    code, out = _run(["table", "--policy", "merged", "--consumers", "nope"], monkeypatch, capsys)
    assert code == 2 and "--consumers: 'nope' is not allowed" in out.err


def test_failed_expectations_say_why(monkeypatch, capsys):
    code, out = _run(["scenario", "data/scenarios/thread-merged.fts", "--policy", "pre-6.0"], monkeypatch, capsys)
    assert code == 1 and "the designs it was written for" in out.err


def test_readme_commands_work_as_written(monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:\w*)\n(.*?)```", readme, re.S)
    commands = [c for b in blocks for c in _examples(b)]
    assert len(commands) >= 3
    for argv in commands:
        if argv[0] in ("sweep", "report", "explore") and "--out" in argv:
            continue                               # they write files: tested in their own modules
        code, out = _run(argv, monkeypatch, capsys)
        assert code == 0, (argv, out.err[-500:])
