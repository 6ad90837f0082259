"""Where the package finds its curated inputs: ``data/`` (kernel facts, thread, presets, scenarios).

The project keeps ``data/`` at its top level; ``ftsim/data`` is a link to it, so a built wheel carries
the same files inside the package and ``importlib.resources`` finds them in a checkout, an editable
install and a wheel installed anywhere alike.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def _data() -> Path:
    root = resources.files("ftsim") / "data"
    # a regular (not zipped) install: the Traversable is a real directory
    return Path(str(root))


DATA: Path = _data()
"""The data directory: ``kernel/``, ``thread/``, ``presets/``, ``scenarios/``."""
