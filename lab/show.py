#!/usr/bin/env python3
"""Compact view of an observed-*.jsonl: python3 lab/show.py FILE.jsonl [substring-of-scenario-file]"""
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
pat = sys.argv[2] if len(sys.argv) > 2 else ""
cur = None
for d in rows:
    if pat not in d["file"]:
        continue
    if d["file"] != cur:
        cur = d["file"]
        print(f"== {cur}{'  (CRASHED)' if d['crashed'] else ''}")
    rec = d["record"]
    rec = f"{rec['count']}:{rec['flags']}" if rec else "-"
    what = f"{d['op']} {d['consumer'] or ''} {d['handle'] or d['function']}"
    extra = ""
    if d["op"] == "call":
        extra = f"body={d['body_ran']} result={d['result_from']} fired={','.join(d['fired'] or [])} ret_seen={d['return_seen']}"
    notes = [n for n in d["notes"] if not n.startswith("value=") or True]
    kn = [n for n in notes if n.startswith(("kernel: ", "crash"))]
    flag = " WARN" if any("WARNING" in n for n in kn) else ""
    flag += " OOPS" if any("Oops" in n or "BUG:" in n for n in kn) else ""
    val = next((n.split(";")[0] for n in notes if n.startswith("value=")), "")
    oth = next((n for n in notes if not n.startswith(("value=", "kernel: ", "crash"))), "")
    print(f"  {d['line']:3} {what:45} ret={d['ret']!s:6} att={d['attached']!s:5} rec={rec:6} {extra} {val} {oth[:60]}{flag}")
