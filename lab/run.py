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
        else:
            raise SystemExit(f"{path}:{lineno}: unknown step {w[0]!r}")
    return steps


def load(path: Path) -> Scen:
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
    listed = {l.strip() for l in (ROOT / "lab/alone.txt").read_text().splitlines() if l.strip() and not l.startswith("#")}
    alone = bool(re.search(r"^#\s*lab:\s*alone", path.read_text(), re.M)) or rel in listed
    return Scen(rel, steps, alone)


# ---------------------------------------------------------------- guest script
MODSLOT = {"kprobe": "lab_kp", "kprobe-post": "lab_kp_post", "kretprobe": "lab_krp",
           "ftrace-ops": "lab_fops", "direct": "lab_direct"}
FORCED = {"-4001": "bpf-fmod-ret", "-4002": "bpf-override-return", "-4003": "fail-function"}


@dataclass
class Planned:
    scen: Scen
    step: Step
    idx: int
    slot: str | None
    live: list = field(default_factory=list)   # (consumer, slot, function, handle) live before a call


def plan(scens: list[Scen], start: int) -> tuple[str, list[Planned]]:
    lines, planned, idx = [], [], start
    for sc in scens:
        lines.append(f"S {sc.name}")
        live = []            # (consumer, slot, function, handle), attach order
        for st in sc.steps:
            idx += 1
            if st.op == "attach":
                used = {s for (_, s, _, _) in live}
                if st.consumer == "livepatch":
                    slot = "lab_lp_a" if "lab_lp_a" not in used else "lab_lp_b"
                elif st.consumer in MODSLOT:
                    slot = MODSLOT[st.consumer]
                elif st.consumer.startswith("bpf-"):
                    slot = str(idx)
                else:
                    slot = "-"
                live.append((st.consumer, slot, st.function, st.handle))
                lines.append(f"A {idx} {st.consumer} {slot} {st.function} {st.handle}")
                planned.append(Planned(sc, st, idx, slot))
            elif st.op == "detach":
                ent = next((e for e in live if e[3] == st.handle), None)
                if ent is None:
                    lines.append(f"U {idx} {st.consumer}")
                    planned.append(Planned(sc, st, idx, None))
                    continue
                live.remove(ent)
                lines.append(f"D {idx} {ent[0]} {ent[1]} {ent[2]} {ent[3]}")
                planned.append(Planned(sc, st, idx, ent[1]))
            else:
                hl = " ".join(f"{c}:{s}:{h}" for (c, s, f, h) in live)
                lines.append(f'C {idx} {st.function} "{hl}"')
                planned.append(Planned(sc, st, idx, None, list(live)))
        z = " ".join(f"{c}:{s}:{f}:{h}" for (c, s, f, h) in reversed(live))
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
    """-> (kernel release, {idx: {kind: [payload...]}}, ended, last STEP idx, tail)"""
    by = {}
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
        elif kind in ("SCEN", "CLEAN", "LEFT", "LEFTKP"):
            by.setdefault("misc", []).append((kind, rest))
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


def value_map(func: str, v: str, planned: Planned):
    """-> (body, result handle or 'orig', origin of value for return hooks)"""
    lp = [(c, s, h) for (c, s, f, h) in planned.live if c == "livepatch"]
    by_slot = {s: h for (c, s, h) in lp}
    v = v.strip()
    if func == "cmdline_proc_show":
        m = re.match(r"LIVEPATCH-(\d)", v)
        if m:
            h = by_slot.get({"1": "lab_lp_a", "2": "lab_lp_b"}[m.group(1)])
            return "new", h, h
        return ("orig", "orig", "orig") if v else (None, None, None)
    m = re.match(r"-?\d+$", v)
    if not m:
        return None, None, None
    if v in ("-1001", "-1002"):
        h = by_slot.get({"-1001": "lab_lp_a", "-1002": "lab_lp_b"}[v])
        return "new", h, h
    if v in FORCED:
        h = next((h for (c, s, f, h) in planned.live if c == FORCED[v]), FORCED[v])
        return "none", h, h
    return "orig", "orig", "orig"


planned_result: dict = {}


def hook_value(func: str, raw: str, planned: Planned):
    try:
        v = int(raw) & 0xffffffff          # int returns: the kernel leaves the upper half of rax alone
        raw = str(v - (1 << 32) if v >= 1 << 31 else v)
    except ValueError:
        pass
    if func == "cmdline_proc_show":
        # both bodies of cmdline_proc_show return 0: the hook saw whichever body ran
        return planned_result.get(planned.idx) if raw == "0" else raw
    return value_map(func, raw, planned)[2]


def to_rows(planned: list[Planned], by: dict, rel: str, crashed_scen: str | None, crash_note: str | None):
    rows = []
    ok = set()          # (scenario, handle) whose attach left the consumer attached
    for p in planned:
        st = p.step
        o = by.get(p.idx)
        if st.op == "attach" and o and o.get("ATT", ["0"])[0].strip() == "1":
            ok.add((p.scen.name, st.handle))
        if st.op == "call":
            p.live = [e for e in p.live if (p.scen.name, e[3]) in ok]
        d = {"file": p.scen.name, "line": st.line, "step": None, "op": st.op, "consumer": st.consumer,
             "function": st.function, "handle": st.handle, "ret": None, "attached": None,
             "callbacks": None, "retries": None, "regenerations": None, "record": None,
             "violations": None, "expect_ok": None, "kernel": rel, "crashed": p.scen.name == crashed_scen,
             "notes": []}
        if st.op == "call":
            d.update(body_ran=None, result_from=None, fired=None, attributed_to=None, ip_seen=None,
                     return_seen=None)
        o = by.get(p.idx)
        if p.slot is None and st.op != "call":
            d["notes"].append("not run in the lab: a second handle of this consumer needs a second module")
        if o:
            if "RET" in o:
                rc, _, msg = o["RET"][0].partition(" ")
                d["ret"], note = ret_of(rc, msg.strip())
                if note:
                    d["notes"].append(note)
            if "ATT" in o:
                d["attached"] = o["ATT"][0].strip() == "1"
            if "REC" in o:
                d["record"] = record_of(o["REC"][0])
            for k in o.get("KMSG", []):
                d["notes"].append("kernel: " + k.strip()[:600])
            if st.op == "call" and "VAL" in o:
                raw = o["VAL"][0]
                body, res, _ = value_map(st.function, raw, p)
                planned_result[p.idx] = res
                cnt0 = dict(x.split("=", 1) for x in o.get("CNT0", [""])[0].split() if "=" in x)
                cnt1 = dict(x.split("=", 1) for x in o.get("CNT1", [""])[0].split() if "=" in x)
                hits = {h: int(cnt1[h].split("/")[0]) - int(cnt0.get(h, "0/0").split("/")[0]) for h in cnt1}
                tags = {}
                for b in o.get("BPF", []):
                    w = b.split()
                    if len(w) >= 4:
                        tags.setdefault(w[1], []).append((w[2], w[3]))
                fired, ret_seen = [], {}
                for (c, s, f, h) in p.live:
                    if c in ("livepatch", "kprobe", "kprobe-post", "kretprobe", "ftrace-ops", "direct"):
                        if hits.get(h, 0) > 0:
                            fired.append(h)
                        if c == "kretprobe" and hits.get(h, 0) > 0:
                            ret_seen[h] = hook_value(st.function, cnt1[h].split("/")[1], p)
                    elif c.startswith("bpf-"):
                        if s in tags:
                            fired.append(h)
                            if c == "bpf-fexit":
                                ret_seen[h] = hook_value(st.function, tags[s][0][1], p)
                    elif c == "function-tracer":
                        if int((o.get("FT") or ["0"])[0] or 0) > 0:
                            fired.append(h)
                    elif c == "function-graph":
                        if int((o.get("FG") or ["0"])[0] or 0) > 0:
                            fired.append(h)
                    elif c == "fail-function" and res == h:
                        fired.append(h)
                lp_ran = any(hits.get(h, 0) > 0 for (c, s, f, h) in p.live if c == "livepatch")
                if body == "orig" and lp_ran:
                    body = "new"
                d.update(body_ran=body, result_from=res, fired=fired,
                         return_seen=(ret_seen or None) if any(c in ("bpf-fexit", "kretprobe") for (c, *_x) in p.live) else None)
                d["notes"].append(f"value={raw.strip()[:80]}; fired listed in attach order (the lab counts hits, not their order)")
        elif p.scen.name == crashed_scen:
            d["notes"].append("not reached: the guest crashed earlier in this scenario")
        if p.scen.name == crashed_scen and crash_note and o and p.idx == max(
                q.idx for q in planned if q.scen.name == crashed_scen and by.get(q.idx)):
            d["notes"].append("crash: " + crash_note)
        rows.append(d)
    return rows


def crash_excerpt(text: str) -> str:
    keep = [l.strip() for l in text.splitlines()
            if re.search(r"BUG:|Oops|RIP:|Kernel panic|WARNING:|Call Trace| \? |^\s*\w+\+0x", l)]
    return " | ".join(keep[:14])[:1500]


def make_groups(scens: list[Scen], steps_per_boot: int) -> list[list[Scen]]:
    """Scenario files -> boots.  Known crashers run in boots of their own: whether and where they crash
    depends on the kernel's memory history (use-after-free), and run after other files they crashed
    differently or hung.  The other files are spread over boots of about steps_per_boot steps, largest
    first onto the least loaded boot, keeping their order within a boot.  The longest boots come first
    (a boot costs about 5 s plus 0.12 s per step), so that the last one to finish starts early."""
    rest = [s for s in scens if not s.alone]
    nb = max(1, -(-sum(len(s.steps) for s in rest) // max(1, steps_per_boot)))
    load, members = [0] * nb, [[] for _ in range(nb)]
    order = {s.name: i for i, s in enumerate(scens)}
    for s in sorted(rest, key=lambda s: (-len(s.steps), order[s.name])):
        i = min(range(nb), key=lambda i: (load[i], i))
        members[i].append(s)
        load[i] += len(s.steps)
    groups = [sorted(m, key=lambda s: order[s.name]) for m in members if m]
    groups += [[s] for s in scens if s.alone]
    return sorted(groups, key=lambda g: -sum(len(s.steps) for s in g))


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
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    Path(args.build).mkdir(parents=True, exist_ok=True)
    scens = [load(Path(f)) for f in args.files]
    groups = make_groups(scens, args.steps_per_boot)
    rows, n, rel, stats = [], 0, None, []
    import concurrent.futures as cf
    pool = cf.ThreadPoolExecutor(max_workers=args.jobs)
    running = {}

    def launch(g):
        nonlocal n
        n += 1
        script, planned = plan(g, n * 10000)
        print(f"kernel-lab: boot {n}: {len(g)} scenario file(s), {len(planned)} steps", flush=True)
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
                raise SystemExit(f"kernel-lab: boot {bn} failed: the guest never reached /init (console tail: {tail})")
            rel = r
            if ended and planned and not any(isinstance(k, int) for k in by):
                raise SystemExit(f"kernel-lab: boot {bn} ran no step: /lab/steps.sh missing in the guest (console: {args.build}/boot-{bn}.log)")
            crashed = None
            if not ended:
                lastp = next((p for p in planned if p.idx == last), None)
                crashed = lastp.scen.name if lastp else g[0].name
                why = killed or "panic"
                print(f"kernel-lab: boot {bn}: guest crashed ({why}) in {crashed}", flush=True)
                names = {p.scen.name for p in planned if p.idx < (last or 0)} | {crashed}
                sub = [p for p in planned if p.scen.name in names]
                rows += to_rows(sub, by, rel, crashed, f"{why}: " + crash_excerpt(text))
                rest = [s for s in g if s.name not in names]
                if rest:
                    groups.insert(0, rest)
                stats.append((bn, len(sub), secs, True))
            else:
                rows += to_rows(planned, by, rel, None, None)
                stats.append((bn, len(planned), secs, False))
            print(f"kernel-lab: boot {bn}: {stats[-1][1]} steps in {secs:.1f} s{' (crashed)' if crashed else ''}",
                  flush=True)
    pool.shutdown()
    stats.sort()
    # step numbers per file
    order = {s.name: i for i, s in enumerate(scens)}
    rows.sort(key=lambda d: (order[d["file"]], d["line"]))
    cnt = {}
    for d in rows:
        cnt[d["file"]] = cnt.get(d["file"], 0) + 1
        d["step"] = cnt[d["file"]]
    out = Path(args.out.replace("@REL@", rel))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as f:
        for d in rows:
            f.write(json.dumps(d, sort_keys=False) + "\n")
    print(f"kernel-lab: {len(rows)} steps from {len(scens)} scenario files in {n} boot(s) -> {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    for (i, k, s, c) in stats:
        print(f"kernel-lab:   boot {i}: {k} steps, {s:.1f} s{', crashed' if c else ''}")


if __name__ == "__main__":
    main()
