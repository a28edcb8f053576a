"""The judging rules run on the submit host (localrules) and must stay cheap: the modules they run import no
deep-learning library. check_health used to import transformers and peft through srlm.train (about 10 s of
each of its jobs on the 2-core box, 100 s of the demo)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "trl", "peft", "accelerate", "lighteval", "vllm")


@pytest.mark.parametrize(
    "module", ["srlm.health", "srlm.grade", "srlm.tables", "srlm.cost", "srlm.figures", "srlm.pages",
               "srlm.data.prep_report"],
)  # fmt: skip
def test_judging_module_imports_no_deep_learning_library(module):
    probe = f"import sys, {module}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "[]", f"{module} imports {out.stdout.strip()}"
