#!/usr/bin/env python3
"""Where the guest's time goes: per-step-kind costs from the @@STEP/@@T guest clock stamps of a kernel-lab run.

    python3 lab/tools/step_times.py [lab/build/boots]

Reads boot-N.log (console) and boot-N.steps.sh (what the host asked for) and prints, per kind of step
(A/D = attach/detach by consumer, C = call by function, U = not run, Z = cleanup of a scenario file), how
many there were and their guest seconds (total, mean, max); then the boot phases (kernel start -> /init,
/init -> first step, last step -> poweroff).  The guest clock is /proc/uptime (10 ms steps); under TCG it
runs at host wall-clock speed, so the figures include the time the guest waited for a host CPU.
Stdlib only.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path


def kinds(steps_sh: str) -> dict[int, str]:
    k = {}
    for line in steps_sh.splitlines():
        w = line.split()
        if len(w) >= 3 and w[0] in "ADCU" and len(w[0]) == 1:
            if w[0] == "C":
                live = line.split('"')[1].split() if '"' in line else []
                k[int(w[1])] = f"C {w[2]} ({len(live)} live)"
            else:
                k[int(w[1])] = f"{w[0]} {w[2]}"
    return k


def events(log: str) -> list[tuple[str, float]]:
    ev = []
    for raw in log.splitlines():
        m = re.search(r"@@(STEP|T) (\S+) (\d+\.\d+)\s*$", raw.rstrip("\r"))
        if m:
            ev.append((m.group(2) if m.group(1) == "T" else int(m.group(2)), float(m.group(3))))
    return ev


def main():
    d = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "build/boots")
    per, phases = {}, {"kernel start -> /init": [], "/init -> first step": [], "last step -> END": []}
    for log in sorted(d.glob("boot-*.log"), key=lambda p: int(re.findall(r"\d+", p.name)[0])):
        sh = log.with_suffix(".steps.sh")
        k = kinds(sh.read_text()) if sh.exists() else {}
        ev = events(log.read_text(errors="replace"))
        t = dict((n, v) for n, v in ev if isinstance(n, str))
        if "INIT" in t:
            phases["kernel start -> /init"].append(t["INIT"])
        if "STEPS" in t and "INIT" in t:
            phases["/init -> first step"].append(t["STEPS"] - t["INIT"])
        for (n, v), (n2, v2) in zip(ev, ev[1:]):
            if isinstance(n, int):
                per.setdefault(k.get(n, "?"), []).append(v2 - v)
            elif n == "Z" and n2 == "ZEND":
                per.setdefault("Z cleanup", []).append(v2 - v)
        if ev and ev[-1][0] == "END":
            last = max((v for n, v in ev if n == "ZEND"), default=None)
            if last is not None:
                phases["last step -> END"].append(ev[-1][1] - last)
    tot = sum(sum(v) for v in per.values())
    print(f"{'kind':34} {'n':>5} {'total s':>8} {'mean s':>7} {'max s':>6} {'share':>6}")
    for kind, v in sorted(per.items(), key=lambda kv: -sum(kv[1])):
        print(f"{kind:34} {len(v):5d} {sum(v):8.1f} {sum(v)/len(v):7.3f} {max(v):6.2f} {100*sum(v)/tot:5.1f}%")
    print(f"{'all steps + cleanups':34} {sum(len(v) for v in per.values()):5d} {tot:8.1f}")
    for name, v in phases.items():
        if v:
            print(f"{name:34} {len(v):5d} boots, mean {sum(v)/len(v):.2f} s, max {max(v):.2f} s")


if __name__ == "__main__":
    main()
