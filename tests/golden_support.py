"""The pinned-behaviour files of tests/golden/: compare a run's digests with the stored ones, or store
them (FTSIM_GOLDEN=update, for a deliberate change of behaviour, said why in its commit)."""
import json
import os
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"


def changed_digests(name: str, got: dict) -> tuple[list, int]:
    """The keys whose digest differs from (or is missing in) tests/golden/NAME, and how many are stored."""
    path = GOLDEN / name
    if os.environ.get("FTSIM_GOLDEN") == "update":
        path.write_text(json.dumps(got, indent=0, sort_keys=True) + "\n")
    want = json.loads(path.read_text())
    return sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k)), len(want)
