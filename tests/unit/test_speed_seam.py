"""The seams of issue 36, read from the source: srlm.generation imports nothing of srlm.train, only srlm.speed
touches the libraries' internals, and srlm.speed's version check falls back to the plain path on unproven versions.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

from srlm import speed

PACKAGE = Path(__file__).resolve().parents[2] / "workflow" / "srlm"
# Private names and helpers of torch/transformers that only the speed layer may use (docs/architecture.md).
INTERNALS = {
    "_attn_implementation",
    "_forward_pre_hooks",
    "repeat_kv",
    "sdpa_attention_forward",
    "masking_utils",
    "GradientCheckpointingLayer",
}


def _modules(root: Path) -> list[Path]:
    files = sorted(root.rglob("*.py"))
    assert files, root
    return files


def _imported(path: Path, package: list[str] | None = None) -> set[str]:
    """Every module an import statement of `path` names, anywhere in the file (function-level imports too);
    relative imports resolved against the file's package (by default its place under workflow/srlm)."""
    package = package or ["srlm", *path.relative_to(PACKAGE).parent.parts]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            out.add(module)
            out |= {f"{module}.{a.name}" for a in node.names}  # from srlm import train
    return out


def _internals(path: Path) -> set[str]:
    """The INTERNALS that `path`'s code names (identifiers, attributes, imported modules; not strings or
    comments), and "type(...).forward" where it calls a model class's forward."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
            if node.attr == "forward" and isinstance(node.value, ast.Call):
                if isinstance(node.value.func, ast.Name) and node.value.func.id == "type":
                    found.add("type(...).forward")
        elif isinstance(node, ast.alias):
            names = node.name.split(".")
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = node.module.split(".")
        found |= INTERNALS.intersection(names)
    return found


def test_generation_imports_nothing_of_train():
    bad = {
        str(p.relative_to(PACKAGE)): sorted(m for m in _imported(p) if m.split(".")[:2] == ["srlm", "train"])
        for p in _modules(PACKAGE / "generation")
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_scans_see_what_they_look_for(tmp_path):
    """A file written to fail both scans: imports inside a function, a relative import, private names in code."""
    path = tmp_path / "x.py"
    path.write_text(
        "from ..train import common\n"
        "def f(model):\n"
        "    from srlm.train import speed\n"
        "    from transformers.integrations.sdpa_attention import repeat_kv\n"
        '    """_forward_pre_hooks in a docstring is no use of it"""\n'
        "    return model.config._attn_implementation, type(model).forward\n"
    )
    assert {"srlm.train.common", "srlm.train.speed"} <= _imported(path, ["srlm", "generation"])
    assert _internals(path) == {"repeat_kv", "_attn_implementation", "type(...).forward"}


def test_only_the_speed_layer_touches_library_internals():
    found = {
        str(p.relative_to(PACKAGE)): sorted(_internals(p))
        for p in _modules(PACKAGE)
        if p.relative_to(PACKAGE).parts[0] != "speed"
    }
    assert {k: v for k, v in found.items() if v} == {}
    inside = set().union(*(_internals(p) for p in _modules(PACKAGE / "speed")))
    assert inside == INTERNALS | {"type(...).forward"}  # the list above is the layer's, not a stale one


def test_proven_versions_take_the_fast_path_silently():
    for device, libs in speed.PROVEN.items():
        versions = {lib: f"{ok[0]}.0+local" for lib, ok in libs.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert speed.check(versions, device) == "fast"


@pytest.mark.parametrize(
    "versions, device, named",
    [
        ({"torch": "2.9.1", "transformers": "5.17.0"}, "cuda", "torch 2.9.1"),
        ({"torch": "2.11.0+cu130", "transformers": "5.18.0"}, "cuda", "transformers 5.18.0"),
        ({"torch": "2.11.0", "transformers": "5.17.0"}, "cpu", "torch 2.11.0"),  # proven on GPUs, not on CPUs
        ({"torch": "2.13.0", "transformers": "5.17.0"}, "mps", "device 'mps'"),
        ({"transformers": "5.17.0"}, "cuda", "torch None"),
    ],
)
def test_unproven_versions_warn_and_take_the_plain_path(versions, device, named):
    with pytest.warns(UserWarning, match="not proven on") as caught:
        assert speed.check(versions, device) == "plain"
    assert named in str(caught[0].message)


def test_a_proven_table_of_ones_own_decides():
    """check is a function of what it is given: another table, other verdicts."""
    table = {"cpu": {"torch": ("3.0",), "transformers": ("6.1",)}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert speed.check({"torch": "3.0.2", "transformers": "6.1.0"}, "cpu", table) == "fast"
    with pytest.warns(UserWarning):
        assert speed.check({"torch": "2.13.0", "transformers": "5.17.0"}, "cpu", table) == "plain"


@pytest.mark.parametrize(
    "placed, cuda_available, judged",
    [
        ("cpu", True, "cuda"),  # a GPU job's model before the Trainer moves it: the GPU's versions decide
        ("cpu", False, "cpu"),
        ("cuda", True, "cuda"),
        ("meta", False, "meta"),
    ],
)
def test_the_layer_judges_the_device_a_model_computes_on(placed, cuda_available, judged):
    assert speed.compute_device(placed, cuda_available) == judged
