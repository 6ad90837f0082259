"""`make mutants`, last step: the score from mutmut's export-cicd-stats (mutants/mutmut-cicd-stats.json)."""
import json
import sys

s = json.load(open(sys.argv[1] if len(sys.argv) > 1 else "mutants/mutmut-cicd-stats.json"))
killed = s["killed"] + s["timeout"]
checked = killed + s["survived"]
print(f"mutants {s['total']}: killed {s['killed']}, timeout {s['timeout']}, survived {s['survived']}, "
      f"no tests {s['no_tests']}, skipped {s.get('skipped', 0)}; score {killed / max(1, checked):.1%} of {checked} checked")
