"""`make mutants SAMPLE=N`: mutation testing of a seeded uniform sample of N mutants (the full run, `make
mutants`, takes hours on 2 cores).  Generates every mutant, draws N names with Python's generator (SEED),
runs only those, and prints the score with a 95 % interval and every survivor."""
import math
import random
import re
import subprocess
import sys

MUTMUT = sys.argv[1]
N, SEED = int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0


def results() -> dict:
    out = subprocess.run([MUTMUT, "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"^\s+(\S+): (.+)$", out, re.M))


# generate the mutants and the test stats (one mutant run; a name that does not exist only ends it early)
subprocess.run([MUTMUT, "run", "ftsim.livepatch.x_attach__mutmut_1"], stdout=subprocess.DEVNULL)
names = sorted(results())
if not names:
    sys.exit("mutsample: mutmut generated no mutants")
sample = sorted(random.Random(SEED).sample(names, min(N, len(names))))
subprocess.run([MUTMUT, "run", *sample], stdout=subprocess.DEVNULL, check=False)
got = results()
status = {n: got.get(n, "not checked") for n in sample}
count = {s: sum(v == s for v in status.values()) for s in sorted(set(status.values()))}
killed = count.get("killed", 0) + count.get("timeout", 0)
checked = killed + count.get("survived", 0) + count.get("no tests", 0)
p = killed / max(1, checked)
half = 1.96 * math.sqrt(p * (1 - p) / max(1, checked))
print(f"mutants {len(names)}; sample {len(sample)} (seed {SEED}): "
      + ", ".join(f"{k} {v}" for k, v in count.items())
      + f"; score {p:.1%} +- {half:.1%} (95 %) of {checked} (no tests counts as survived)")
for n in sample:
    if status[n] in ("survived", "no tests"):
        print(f"  {status[n]}: {n}")
