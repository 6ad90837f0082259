#!/usr/bin/env python3
"""ftsim kernel lab, host side: turn scenario files into guest step scripts, boot QEMU, parse the console.

    python3 lab/run.py --kernel VMLINUZ --initrd BASE.cpio.gz --out data/kernel/observed-REL.jsonl FILE.fts...

Stdlib only (the host's python3).  Uses ftsim.scenario.parse_file when it imports, else a small parser
of the same format (data/scenarios/FORMAT.md).  A scenario file with a line `# lab: alone` is run in a boot
of its own (known crashers); the others are grouped into boots of about --steps-per-boot steps.  A boot
that ends without @@END (panic, timeout) marks the scenario in progress `crashed` and the remaining ones
are run again in a fresh boot.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------- scenario files
@dataclass
class Step:
    line: int
    op: str
    consumer: str | None
    function: str | None
    handle: str | None


@dataclass
class Scen:
    name: str
    steps: list
    alone: bool = False


def _own_parse(path: Path) -> list[Step]:
    steps, handles, consumer_of = [], set(), {}
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        body = raw.split("#", 1)[0].split("=>", 1)[0].strip()
        if not body:
            continue
        w = body.split()
        if w[0] == "attach":
            consumer, func = w[1], w[2]
            if len(w) == 5 and w[3] == "as":
                h = w[4]
            else:
                h, n = consumer, 2
                while h in handles:
                    h, n = f"{consumer}-{n}", n + 1
            handles.add(h)
            consumer_of[h] = (consumer, func)
            steps.append(Step(lineno, "attach", consumer, func, h))
        elif w[0] == "detach":
            c, f = consumer_of.get(w[1], (None, None))
            steps.append(Step(lineno, "detach", c, f, w[1]))
        elif w[0] == "call":
            steps.append(Step(lineno, "call", None, w[1], None))
        elif w[0] in ("kernel", "set", "function"):
            continue        # model directives (FORMAT.md): nothing for the kernel to do
        else:
            raise SystemExit(f"{path}:{lineno}: unknown step {w[0]!r}")
    return steps


def _on(kernel: str | None, versions: list[str]) -> bool:
    """Does `kernel` (e.g. 6.1.192, 6.12.117-ftsim-ei) belong to one of `versions` (6.1 matches 6.1.x, not 6.12)?
    No versions: every kernel."""
    if not versions or kernel is None:
        return True
    return any(kernel == v or re.match(re.escape(v) + r"[.\-+~]", kernel) for v in versions)


def alone_rules() -> dict[str, list[str]]:
    """lab/alone.txt: FILE [on VERSION...] -> versions (empty: every kernel)."""
    out = {}
    for l in (ROOT / "lab/alone.txt").read_text().splitlines():
        w = l.split("#", 1)[0].split()
        if w:
            out[w[0]] = w[2:] if len(w) > 2 and w[1] == "on" else []
    return out


def load(path: Path, kernel: str | None = None) -> Scen:
    rel = str(path.resolve().relative_to(ROOT)) if path.resolve().is_relative_to(ROOT) else str(path)
    steps = None
    try:
        sys.path.insert(0, str(ROOT))
        from ftsim import scenario as fs  # noqa: needs the project's venv (pandas)
        sc = fs.parse_file(path)
        consumer_of = {}
        steps = []
        for s in sc.steps:
            c, f = s.consumer, s.function
            if s.op == "attach":
                consumer_of[s.handle] = (c, f)
            elif s.op == "detach":
                c, f = consumer_of.get(s.handle, (None, None))
            steps.append(Step(s.line, s.op, c, f, s.handle))
    except ImportError:
        steps = _own_parse(path)
    # a file runs in a boot of its own where it is known to crash the guest: `# lab: alone [on VERSION...]`
    # in the file, or a line of lab/alone.txt
    m = re.search(r"^#\s*lab:\s*alone(?:\s+on\s+(.*))?$", path.read_text(), re.M)
    rules = alone_rules()
    alone = (m is not None and _on(kernel, (m.group(1) or "").split())) or (rel in rules and _on(kernel, rules[rel]))
    return Scen(rel, steps, alone)


# ---------------------------------------------------------------- guest script
# The modules a consumer may use, in the order the guest tries them (lab/src/mod/Kbuild): a slot belongs to the
# handle whose insmod succeeded until that handle is detached (lab/guest/lib.sh).
MODSLOTS = {"livepatch": "lab_lp_a lab_lp_b lab_lp_c lab_lp_d", "kprobe": "lab_kp",
            "kprobe-post": "lab_kp_post lab_kp_post2", "kretprobe": "lab_krp", "ftrace-ops": "lab_fops",
            "direct": "lab_direct lab_direct2", "fprobe": "lab_fpr", "fprobe-exit": "lab_fprx"}
FORCED = {"-4001": "bpf-fmod-ret", "-4002": "bpf-override-return", "-4003": "fail-function"}


@dataclass
class Planned:
    scen: Scen
    step: Step
    idx: int
    live: list = field(default_factory=list)   # (consumer, attach idx, function, handle) live before a call


def plan(scens: list[Scen], start: int) -> tuple[str, list[Planned]]:
    lines, planned, idx = [], [], start
    for sc in scens:
        funcs = sorted({st.function for st in sc.steps if st.function})
        lines.append(f'S {sc.name} "{" ".join(funcs)}"')
        live = []            # (consumer, attach idx, function, handle), attach order, by the scenario text
        for st in sc.steps:
            idx += 1
            if st.op == "attach":
                live.append((st.consumer, idx, st.function, st.handle))
                lines.append(f'A {idx} {st.consumer} {st.function} {st.handle} "{MODSLOTS.get(st.consumer, "")}"')
                planned.append(Planned(sc, st, idx))
            elif st.op == "detach":
                ent = next((e for e in live if e[3] == st.handle), None)
                if ent is not None:
                    live.remove(ent)
                lines.append(f"D {idx} {st.consumer} {st.function} {st.handle}")
                planned.append(Planned(sc, st, idx))
            else:
                hl = " ".join(f"{c}:{h}" for (c, i, f, h) in live)
                lines.append(f'C {idx} {st.function} "{hl}"')
                planned.append(Planned(sc, st, idx, list(live)))
        z = " ".join(f"{c}:{f}:{h}" for (c, i, f, h) in reversed(live))
        lines.append(f'Z "{z}"')
    return "\n".join(lines) + "\n", planned


# ---------------------------------------------------------------- boot
def cpio_newc(files: dict[str, bytes]) -> bytes:
    """A tiny newc cpio writer (directories must already exist in the base archive)."""
    out = b""
    ino = 900000
    for name, data in list(files.items()) + [("TRAILER!!!", b"")]:
        ino += 1
        nb = name.encode() + b"\0"
        mode = 0o100755 if name != "TRAILER!!!" else 0
        hdr = "070701" + "".join(f"{v:08x}" for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out += hdr.encode() + nb
        out += b"\0" * ((4 - len(out) % 4) % 4)
        out += data
        out += b"\0" * ((4 - len(out) % 4) % 4)
    return out


QEMU_OPTS = ["-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "1", "-no-reboot",
             # no default devices (NIC and its iPXE option ROM, VGA), the serial console on stdout
             "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio"]
# the header of every kernel oops ("Oops: 0000 [#1] ...", "general protection fault, ...: 0000 [#1] ...")
OOPS_RE = re.compile(rb"[0-9a-f]{4} \[#\d+\]|Kernel panic - not syncing")


def boot(args, script: str, nsteps: int, n: int) -> tuple[str, float, str | None]:
    """-> (console text, wall seconds, None or why the guest was killed: 'timeout' / 'hang after oops' /
    'hang' (no console output for --idle-seconds))"""
    bdir = Path(args.build)
    initrd = bdir / f"boot-{n}.cpio"
    base = Path(args.initrd).read_bytes()
    base += b"\0" * ((4 - len(base) % 4) % 4)      # an uncompressed archive must start 4-aligned
    initrd.write_bytes(base + cpio_newc({"lab/steps.sh": script.encode()}))
    (bdir / f"boot-{n}.steps.sh").write_text(script)
    log = bdir / f"boot-{n}.log"
    timeout = min(args.max_boot_seconds, 30 + 2 * nsteps)
    cmd = ["qemu-system-x86_64", *QEMU_OPTS, "-kernel", args.kernel, "-initrd", str(initrd),
           "-append", args.append]
    t0 = time.time()
    killed, oops_at, tail, last_out = None, None, b"", t0
    with open(log, "wb") as f:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        fd = p.stdout.fileno()
        while True:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                f.write(chunk)
                last_out = time.time()
                if oops_at is None and OOPS_RE.search(tail + chunk):
                    oops_at = time.time()
                tail = chunk[-64:]
            now = time.time()
            # with oops=panic panic=-1 -no-reboot an oops ends QEMU within a fraction of a second; a guest
            # still running 3 s after one is oopsing inside its oops handler (a loop that never panics)
            if oops_at is not None and now - oops_at > args.oops_grace:
                killed = "hang after oops"
            elif now - t0 > timeout:
                killed = "timeout"
            elif now - last_out > args.idle_seconds:
                killed = "hang"
            if killed:
                p.kill()
                f.write(p.stdout.read() or b"")
                break
        p.wait()
        p.stdout.close()
    return log.read_text(errors="replace"), time.time() - t0, killed


# ---------------------------------------------------------------- console -> JSON
def _errmap():
    m = {}
    for code, name in errno.errorcode.items():
        m.setdefault(os.strerror(code), -code)
    return m


ERRTEXT = _errmap()


def ret_of(rc: str, msg: str):
    if rc == "0" and not msg:
        return 0, None
    if msg.startswith("UNAVAILABLE"):
        return None, msg[len("UNAVAILABLE "):]
    if msg.startswith("NOFILE"):
        return -errno.ENOENT, msg
    m = re.match(r"BPFL (-?\d+)", msg)
    if m:
        return int(m.group(1)), msg
    for text in sorted(ERRTEXT, key=len, reverse=True):
        if msg.rstrip().endswith(text):
            return ERRTEXT[text], msg
    return (0 if rc == "0" else None), msg or None


REC_RE = re.compile(r"^\S+ \((\d+)\)(.*)$")


def record_of(line: str):
    line = line.strip()
    if not line:
        return {"count": 0, "flags": ""}
    m = REC_RE.match(line)
    if not m:
        return None
    rest = re.split(r"tramp:|->|\bops:", m.group(2))[0]
    return {"count": int(m.group(1)), "flags": "".join(re.findall(r"(?<!\S)([RIDM])(?!\S)", rest))}


def parse_console(text: str):
    """-> (kernel release, {idx: {kind: [payload...]}, "misc": [(kind, rest)...]}, ended, last STEP idx)"""
    by = {"misc": []}
    rel, last, ended = None, None, False
    for raw in text.splitlines():
        m = re.search(r"@@([A-Z0-9]+)(?: (.*))?$", raw.rstrip("\r"))
        if not m:
            continue
        kind, rest = m.group(1), (m.group(2) or "")
        if kind == "BOOT":
            rel = rest.strip()
        elif kind == "END":
            ended = True
        elif kind in ("SCEN", "CLEAN", "LEFT", "LEFTKP", "MODIFIED"):
            by["misc"].append((kind, rest))
        else:
            i, _, payload = rest.partition(" ")
            try:
                i = int(i)
            except ValueError:
                continue
            by.setdefault(i, {}).setdefault(kind, []).append(payload)
            if kind == "STEP":
                last = i
    return rel, by, ended, last


def boot_history(by: dict) -> dict[str, dict]:
    """Per scenario file of a boot: the functions this boot had already modified when the file began
    (6.4+: their records carry the sticky M for the rest of the boot), and what the
    previous file left attached (enabled_functions / kprobes/list after its cleanup), if anything."""
    out, cur, left = {}, None, ""
    for kind, rest in by["misc"]:
        if kind == "SCEN":
            cur = rest.strip()
            out[cur] = {"modified_before": None, "left_before": left or None}
            left = ""
        elif kind == "MODIFIED" and cur:
            name, _, funcs = rest.partition(" ")
            out[cur]["modified_before"] = funcs.split()
        elif kind in ("LEFT", "LEFTKP") and rest.strip():
            left = (left + " | " if left else "") + f"{kind.lower()}: {rest.strip()[:300]}"
    return out


def value_map(func: str, v: str, lp_of: dict):
    """The value the caller got -> (body, result handle or 'orig', origin of the value for return hooks).
    lp_of: livepatch number (1-4, lab/src/mod/lp.c LPVAL) -> handle of the live livepatch in that module."""
    v = v.strip()
    if func == "cmdline_proc_show":
        m = re.match(r"LIVEPATCH-(\d)", v)
        if m:
            h = lp_of.get(int(m.group(1)))
            return "new", h, h
        return ("orig", "orig", "orig") if v else (None, None, None)
    m = re.match(r"-?\d+$", v)
    if not m:
        return None, None, None
    if v in ("-1001", "-1002", "-1003", "-1004"):
        h = lp_of.get(-1000 - int(v))
        return "new", h, h
    if v in FORCED:
        return "none", FORCED[v], FORCED[v]
    return "orig", "orig", "orig"


def hook_value(func: str, raw: str, lp_of: dict, result):
    try:
        v = int(raw) & 0xffffffff          # int returns: the kernel leaves the upper half of rax alone
        raw = str(v - (1 << 32) if v >= 1 << 31 else v)
    except ValueError:
        pass
    if func == "cmdline_proc_show":
        # both bodies of cmdline_proc_show return 0: the hook saw whichever body ran
        return result if raw == "0" else raw
    return value_map(func, raw, lp_of)[2]


LPNUM = {"lab_lp_a": 1, "lab_lp_b": 2, "lab_lp_c": 3, "lab_lp_d": 4}
MODULE_KINDS = ("livepatch", "kprobe", "kprobe-post", "kretprobe", "ftrace-ops", "direct", "fprobe", "fprobe-exit")


def to_rows(planned: list[Planned], by: dict, rel: str, crashed_scen: str | None, crash_note: str | None,
            boot_no: int):
    rows = []
    history = boot_history(by)
    ok = set()          # (scenario, handle) whose attach left the consumer attached
    slot_of = {}        # (scenario, handle) -> module slot the guest chose
    for p in planned:
        st = p.step
        o = by.get(p.idx)
        if st.op == "attach" and o:
            if o.get("ATT", ["0"])[0].strip() == "1":
                ok.add((p.scen.name, st.handle))
            if "SLOT" in o:
                slot_of[(p.scen.name, st.handle)] = o["SLOT"][0].strip()
        hist = history.get(p.scen.name, {})
        d = {"file": p.scen.name, "line": st.line, "step": None, "op": st.op, "consumer": st.consumer,
             "function": st.function, "handle": st.handle, "ret": None, "attached": None,
             "callbacks": None, "retries": None, "regenerations": None, "record": None,
             "violations": None, "expect_ok": None, "kernel": rel, "crashed": p.scen.name == crashed_scen,
             "boot": boot_no, "modified_before": hist.get("modified_before"), "notes": []}
        if st.op == "call":
            d.update(body_ran=None, result_from=None, fired=None, attributed_to=None, ip_seen=None,
                     return_seen=None)
        if o:
            if "RET" in o:
                rc, _, msg = o["RET"][0].partition(" ")
                d["ret"], note = ret_of(rc, msg.strip())
                if note:
                    d["notes"].append(note)
            if "ATT" in o and not (d["ret"] is None and st.op != "call"):   # a step not run observes no attachment
                d["attached"] = o["ATT"][0].strip() == "1"
            if "REC" in o:
                d["record"] = record_of(o["REC"][0])
            if "RECFIRST" in o:
                r0 = record_of(o["RECFIRST"][0])
                if r0 is not None:
                    d["notes"].append(f"record re-read: the first read showed {r0['count']}:{r0['flags']}")
            for k in o.get("KMSG", []):
                d["notes"].append("kernel: " + k.strip()[:600])
            if st.op == "call" and "VAL" in o:
                live = [e for e in p.live if (p.scen.name, e[3]) in ok]
                lp_of = {LPNUM.get(slot_of.get((p.scen.name, h)), 0): h for (c, i, f, h) in live if c == "livepatch"}
                raw = o["VAL"][0]
                body, res, _ = value_map(st.function, raw, lp_of)
                if res in FORCED.values():     # a forced value: the live handle of that consumer decided
                    res = next((h for (c, i, f, h) in live if c == res), res)
                cnt0 = dict(x.split("=", 1) for x in o.get("CNT0", [""])[0].split() if "=" in x)
                cnt1 = dict(x.split("=", 1) for x in o.get("CNT1", [""])[0].split() if "=" in x)
                hits = {h: int(cnt1[h].split("/")[0]) - int(cnt0.get(h, "0/0").split("/")[0]) for h in cnt1}
                tags = {}
                for b in o.get("BPF", []):
                    w = b.split()
                    if len(w) >= 4:
                        tags.setdefault(w[1], []).append((w[2], w[3]))
                fired, ret_seen = [], {}
                for (c, i, f, h) in live:
                    if c in MODULE_KINDS:
                        if hits.get(h, 0) > 0:
                            fired.append(h)
                        if c in ("kretprobe", "fprobe-exit") and hits.get(h, 0) > 0:
                            ret_seen[h] = hook_value(st.function, cnt1[h].split("/")[1], lp_of, res)
                    elif c.startswith("bpf-"):
                        if str(i) in tags:
                            fired.append(h)
                            if c == "bpf-fexit":
                                ret_seen[h] = hook_value(st.function, tags[str(i)][0][1], lp_of, res)
                    elif c == "function-tracer":
                        if int((o.get("FT") or ["0"])[0] or 0) > 0:
                            fired.append(h)
                    elif c == "function-graph":
                        if int((o.get("FG") or ["0"])[0] or 0) > 0:
                            fired.append(h)
                    elif c == "fail-function" and res == h:
                        fired.append(h)
                lp_ran = any(hits.get(h, 0) > 0 for (c, i, f, h) in live if c == "livepatch")
                if body == "orig" and lp_ran:
                    body = "new"
                d.update(body_ran=body, result_from=res, fired=fired,
                         return_seen=(ret_seen or None) if any(c in ("bpf-fexit", "kretprobe", "fprobe-exit")
                                                               for (c, *_x) in live) else None)
                d["notes"].append(f"value={raw.strip()[:80]}; fired listed in attach order (the lab counts hits, not their order)")
        elif p.scen.name == crashed_scen:
            d["notes"].append("not reached: the guest crashed earlier in this scenario")
        if hist.get("left_before") and p is next(q for q in planned if q.scen.name == p.scen.name):
            d["notes"].append("boot history: the previous file of this boot left " + hist["left_before"])
        if p.scen.name == crashed_scen and crash_note and o and p.idx == max(
                q.idx for q in planned if q.scen.name == crashed_scen and by.get(q.idx)):
            d["notes"].append("crash: " + crash_note)
        rows.append(d)
    return rows


def crash_excerpt(text: str) -> str:
    keep = [l.strip() for l in text.splitlines()
            if re.search(r"BUG:|Oops|RIP:|Kernel panic|WARNING:|Call Trace| \? |^\s*\w+\+0x", l)]
    return " | ".join(keep[:14])[:1500]


def make_groups(scens: list[Scen], steps_per_boot: int, jobs: int = 2) -> list[list[Scen]]:
    """Scenario files -> boots.  Known crashers run in boots of their own: whether and where they crash
    depends on the kernel's memory history (use-after-free), and run after other files they crashed
    differently or hung.  The other files are spread over boots of about steps_per_boot steps, largest
    first onto the least loaded boot, keeping their order within a boot.  The longest boots come first
    (a boot costs about 5 s plus 0.12 s per step), so that the last one to finish starts early."""
    rest = [s for s in scens if not s.alone]
    # a multiple of the boots that run at once, so that they finish together
    nb = jobs * max(1, round(sum(len(s.steps) for s in rest) / max(1, jobs * steps_per_boot)))
    load, members = [0] * nb, [[] for _ in range(nb)]
    order = {s.name: i for i, s in enumerate(scens)}
    for s in sorted(rest, key=lambda s: (-len(s.steps), order[s.name])):
        i = min(range(nb), key=lambda i: (load[i], i))
        members[i].append(s)
        load[i] += len(s.steps)
    groups = [sorted(m, key=lambda s: order[s.name]) for m in members if m]
    groups += [[s] for s in scens if s.alone]
    return sorted(groups, key=lambda g: -sum(len(s.steps) for s in g))


def merge_observations(old_text: str, rows: list[dict], ran: set) -> tuple[list[dict], int]:
    """The observations to write: a run of some files (LAB_FILES) replaces only those files' rows; the
    other files' rows of the earlier run are kept in their place (those of files that no longer exist
    are dropped), new files go last.  Returns (rows, how many earlier rows were kept)."""
    new: dict[str, list[dict]] = {}
    for d in rows:
        new.setdefault(d["file"], []).append(d)
    kept, merged = 0, []
    for line in old_text.splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        if d["file"] in ran:
            merged.extend(new.pop(d["file"], []))
        elif (ROOT / d["file"]).exists():
            merged.append(d)
            kept += 1
    merged.extend(d for f in new.values() for d in f)
    return merged, kept


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--build", default=str(ROOT / "lab/build/boots"))
    ap.add_argument("--steps-per-boot", type=int, default=200, help="about this many steps per boot")
    ap.add_argument("--jobs", type=int, default=2, help="boots run at the same time")
    ap.add_argument("--max-boot-seconds", type=int, default=600)
    ap.add_argument("--idle-seconds", type=float, default=45,
                    help="a guest that prints nothing for this long counts as hung (a step waits at most ~20 s)")
    ap.add_argument("--oops-grace", type=float, default=3.0,
                    help="seconds a guest may run on after an oops before it counts as hung and is killed")
    ap.add_argument("--append", default="console=ttyS0 panic=-1 oops=panic quiet ftsim_lab", help="kernel command line")
    ap.add_argument("--tag", default="kernel-lab", help="prefix of the progress lines")
    ap.add_argument("--kernel-version", default=None, help="the kernel's version (6.1.192): which files run alone (lab/alone.txt)")
    ap.add_argument("--model-set", default="", help="'FIELD=VALUE ...': model overrides, stored with the observations "
                    "as 'set FIELD=VALUE' lines for the comparison (ftsim/observed.py)")
    ap.add_argument("--model-lines", default="", help="'line; line': model header lines (e.g. 'function F "
                    "error_injection=no'), stored with the observations as they are")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    Path(args.build).mkdir(parents=True, exist_ok=True)
    scens = [load(Path(f), args.kernel_version) for f in args.files]
    groups = make_groups(scens, args.steps_per_boot, args.jobs)
    rows, n, rel, stats = [], 0, None, []
    steps_all, steps_done = sum(len(s.steps) for s in scens), 0
    model_lines = [f"set {x}" for x in args.model_set.split()] + [x.strip() for x in args.model_lines.split(";") if x.strip()]
    import concurrent.futures as cf
    pool = cf.ThreadPoolExecutor(max_workers=args.jobs)
    running = {}

    def launch(g):
        nonlocal n
        n += 1
        script, planned = plan(g, n * 10000)
        print(f"{args.tag}: boot {n}: {len(g)} scenario file(s), {len(planned)} steps ({steps_done} of {steps_all} done)", flush=True)
        running[pool.submit(boot, args, script, len(planned), n)] = (n, g, planned)

    while groups or running:
        while groups and len(running) < args.jobs:
            launch(groups.pop(0))
        done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
        for fut in done:
            bn, g, planned = running.pop(fut)
            text, secs, killed = fut.result()
            r, by, ended, last = parse_console(text)
            if r is None:
                tail = " | ".join(text.strip().splitlines()[-5:])[-400:]
                raise SystemExit(f"{args.tag}: ERROR: boot {bn}: the guest never reached /init: the image does not "
                                 f"boot under QEMU (console tail: {tail}; full console: {args.build}/boot-{bn}.log)")
            rel = r
            if ended and planned and not any(isinstance(k, int) for k in by):
                raise SystemExit(f"{args.tag}: ERROR: boot {bn} ran no step: /lab/steps.sh missing in the guest (console: {args.build}/boot-{bn}.log)")
            crashed, stopped = None, next((rest.strip() for k, rest in by["misc"] if k == "STOP"), None)
            if not ended:
                lastp = next((p for p in planned if p.idx == last), None)
                crashed = lastp.scen.name if lastp else g[0].name
                why = killed or "panic"
                print(f"{args.tag}: boot {bn}: guest crashed ({why}) in {crashed}", flush=True)
                names = {p.scen.name for p in planned if p.idx < (last or 0)} | {crashed}
                sub = [p for p in planned if p.scen.name in names]
                rows += to_rows(sub, by, rel, crashed, f"{why}: " + crash_excerpt(text), bn)
            elif stopped:
                # the kernel warned during `stopped`: the boot ended after that file (lab/guest/lib.sh Z)
                print(f"{args.tag}: boot {bn}: the kernel warned in {stopped}; the next files go to a fresh boot", flush=True)
                upto = [s.name for s in g][: [s.name for s in g].index(stopped) + 1]
                names = set(upto)
                sub = [p for p in planned if p.scen.name in names]
                rows += to_rows(sub, by, rel, None, None, bn)
            else:
                names = {s.name for s in g}
                sub = planned
                rows += to_rows(planned, by, rel, None, None, bn)
            rest = [s for s in g if s.name not in names]
            if rest:
                groups.insert(0, rest)
            steps_done += len(sub)
            stats.append((bn, len(sub), secs, bool(crashed)))
            print(f"{args.tag}: boot {bn}: {len(sub)} steps in {secs:.1f} s{' (crashed)' if crashed else ''}; "
                  f"{steps_done} of {steps_all} steps done", flush=True)
    pool.shutdown()
    stats.sort()
    # step numbers per file
    order = {s.name: i for i, s in enumerate(scens)}
    rows.sort(key=lambda d: (order[d["file"]], d["line"]))
    cnt = {}
    for d in rows:
        cnt[d["file"]] = cnt.get(d["file"], 0) + 1
        d["step"] = cnt[d["file"]]
        if model_lines:
            d["model_lines"] = model_lines
    out = Path(args.out.replace("@REL@", rel))
    out.parent.mkdir(parents=True, exist_ok=True)
    merged, kept = merge_observations(out.read_text() if out.exists() else "", rows,
                                      {d["file"] for d in rows} | {s.name for s in scens})
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        for d in merged:
            f.write(json.dumps(d, sort_keys=False) + "\n")
    os.replace(tmp, out)
    if kept:
        print(f"{args.tag}: kept {kept} steps of the files not run this time from the earlier {out.name}")
    print(f"{args.tag}: {len(rows)} steps from {len(scens)} scenario files in {n} boot(s) -> {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    for (i, k, s, c) in stats:
        print(f"{args.tag}:   boot {i}: {k} steps, {s:.1f} s{', crashed' if c else ''}")


if __name__ == "__main__":
    main()
