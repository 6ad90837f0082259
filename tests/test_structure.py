"""The package's shape: no import circle between its modules (imports inside functions included), no
module over 400 lines, and the kernel's layering: ftrace knows nothing of BPF, kprobes or livepatch."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "ftsim"
MAX_LINES = 400


def _imports(path: Path) -> set[str]:
    """The ftsim modules a file imports anywhere (relative or absolute, at module level or in a function)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                out.add(node.module.split(".")[0])
            elif node.level == 1:
                out.update(a.name for a in node.names)
            elif node.module and node.module.split(".")[0] == "ftsim":
                parts = node.module.split(".")
                out.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("ftsim."))
    return out


def graph() -> dict[str, set[str]]:
    mods = {p.stem: p for p in PKG.glob("*.py")}
    return {m: {d for d in _imports(p) if d in mods and d != m} for m, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle():
    assert cycles(graph()) == []


def test_ftrace_knows_no_owner():
    """ftrace calls ops->ops_func; it imports none of the subsystems that own ops."""
    assert not graph()["ftrace"] & {"bpf", "kprobes", "livepatch", "plainops", "mechanisms", "call"}


def test_no_module_over_400_lines():
    long = {p.name: n for p in PKG.glob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long
