"""Every `python -m srlm.X` a rule runs ends a known failure (DataError: a bad file, a damaged model) with one
line and exit status 1, never a traceback: each entry point's main() goes through srlm.data.io.cli."""

from __future__ import annotations

import re

from tests.conftest import REPO

PKG = REPO / "workflow" / "srlm"
OWN_HANDLER = {"config.py"}  # srlm.config reports ConfigError itself (it is also the Snakefile's check)


def test_every_entry_point_is_wrapped():
    entry = [p for p in PKG.rglob("*.py") if re.search(r'^if __name__ == "__main__":', p.read_text(), flags=re.M)]
    assert len(entry) >= 15
    bare = [
        str(p.relative_to(PKG))
        for p in entry
        if p.name not in OWN_HANDLER and not re.search(r"^@cli\ndef main\(", p.read_text(), flags=re.M)
    ]
    assert not bare, f"entry points without the @cli wrapper: {bare}"
