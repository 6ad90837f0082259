"""The package as a user installs it: the wheel built from this tree, installed into a fresh virtual
environment, run from a directory that is not the project (so nothing can read ../data by accident).

Every CLI command runs, presets and kernel data load, and each notebook's imports and first calls work."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")


def _run(cmd, cwd, env, ok=(0,)):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode in ok, f"{cmd}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    if UV is None:
        pytest.fail("uv is missing from the project's venv (make test installs it)")
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["FTSIM_CACHE"] = "off"
    _run([UV, "build", "--wheel", "--out-dir", str(tmp / "dist"), str(ROOT)], tmp, env)
    wheel = next((tmp / "dist").glob("ftsim-*.whl"))
    _run([UV, "venv", "-q", "--python", sys.executable, str(tmp / "venv")], tmp, env)
    py = tmp / "venv" / "bin" / "python"
    _run([UV, "pip", "install", "-q", "--python", str(py), str(wheel)], tmp, env)
    work = tmp / "elsewhere"
    work.mkdir()
    return py, work, env


def test_the_wheel_carries_its_data_and_nothing_reads_the_source_tree(installed):
    py, work, env = installed
    r = _run([str(py), "-c", "import ftsim, json; from ftsim import paths, workload, thread, policy, functions;"
              "print(json.dumps([ftsim.__file__, str(paths.DATA), sorted(workload.PRESETS),"
              " len(thread.df_messages()), policy.get('merged', kernel='6.12.117+deb13-amd64').label,"
              " functions.is_injectable('__x64_sys_getppid')]))"], work, env)
    where, data, presets, messages, label, inj = json.loads(r.stdout)
    assert str(ROOT) not in where and str(ROOT) not in data      # the installed copy, not this tree
    assert {"uniform", "security-response", "bpf-lsm", "observability"} <= set(presets)
    assert messages > 10 and label == "merged 6.12.117" and inj is True


def test_every_command_runs_from_the_installed_console_script(installed, tmp_path):
    py, work, env = installed
    ftsim = str(py.parent / "ftsim")
    fts = work / "s.fts"
    shutil.copy(ROOT / "data" / "scenarios" / "bug-modify-path-bypass.fts", fts)
    out = _run([ftsim, "scenario", str(fts), "--policy", "merged", "--kernel", "6.1.0-56-amd64"], work, env).stdout
    assert "merged 6.1.192" in out and "oops" in out
    assert "-EBUSY" in _run([ftsim, "table", "--policy", "pre-6.0", "--consumers", "key"], work, env).stdout
    assert "NoSilentBypass" in _run([ftsim, "explore", "--policy", "merged", "--kernel", "6.12.58", "--max-len", "3",
                                     "--consumers", "livepatch", "bpf-fentry", "bpf-fexit"], work, env).stdout
    _run([ftsim, "sweep", "--preset", "uniform", "--workloads", "20", "--events", "40", "--chunk", "10",
          "--no-progress", "--out", str(work / "s.parquet")], work, env)
    _run([ftsim, "report", str(work / "s.parquet"), "--out", str(work / "report")], work, env)
    assert any((work / "report").glob("*.png"))
    bad = _run([ftsim, "scenario", str(fts), "--policy", "merged", "--kernel", "9.0"], work, env, ok=(2,))
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("nb", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_each_notebooks_imports_run_against_the_wheel(installed, nb):
    """The notebook's import lines (every ``import``/``from`` line of its code cells), run by the
    installed interpreter outside the project."""
    py, work, env = installed
    lines = []
    for cell in nbformat.read(nb, as_version=4).cells:
        if cell.cell_type == "code":
            lines += [ln.strip() for ln in cell.source.splitlines()
                      if ln.startswith(("import ", "from ")) and "__future__" not in ln]
    assert lines, f"{nb.name} imports nothing"
    _run([str(py), "-c", "\n".join(lines)], work, env)
