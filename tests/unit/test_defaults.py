"""One source of defaults (docs/architecture.md, "Defaults"): config.yaml states every value, the code keeps no
fallback, and a key that came after finished jobs is left out of their params at its schema `default` in one
place (srlm.config.without_defaults, common.smk's arg) and put back in one place (srlm.config.job_params)."""

from __future__ import annotations

import ast
import copy
import inspect
import json
import re

import yaml

from srlm import config as cfg
from srlm import generation
from srlm.generation.vllm import VLLMEngine
from tests.conftest import REPO

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
PACKAGE = REPO / "workflow" / "srlm"

# `.get(key, default)` calls on dicts that are not config, each with why. By file and call text.
NOT_CONFIG = {
    ("config.py", "node.get('allOf', [])"): "the JSON schema",
    ("config.py", "branch['if'].get('required', [])"): "the JSON schema",
    ("config.py", "node.get('properties', {})"): "the JSON schema",
    ("config.py", "err.schema.get('properties', {})"): "the JSON schema",
    ("config.py", "branch['then'].get('properties', {})"): "the JSON schema",
    ("data/gsm8k.py", "r.get('id', f'gsm8k-{split}-{i}')"): "a GSM8K row: the hub's rows have no id",
    ("figures.py", "r.get('step', i + 1)"): "a metrics record",
    ("figures.py", "(health or {}).get('status', 'no health.json')"): "health.json, a job's output",
    ("launch.py", "fields.get('NumNodes', '1')"): "scontrol's answer",
    ("lighteval_tasks.py", "line.get('__index', 0)"): "a lighteval row",
    ("rewards.py", "message.get('role', 'assistant')"): "a chat message",
    ("rewards.py", "p.get('text', '')"): "a message part",
    ("train/checkpoints.py", "state.get('max_steps', float('inf'))"): "the Trainer's trainer_state.json",
    ("train/checkpoints.py", "r.get('step', 0)"): "a metrics record",
    ("speed/packed.py", "kwargs.get('mask_function', causal_mask_function)"): "transformers' keyword arguments",
}
# The process environment (launch.py's `env` is a copy of it): not config.
ENVIRONMENT = {"os.environ", "env"}


def _fallbacks(path) -> list[tuple[str, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and len(node.args) == 2
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not (isinstance(node.args[1], ast.Constant) and node.args[1].value is None)
            and ast.unparse(node.func.value) not in ENVIRONMENT
        ):
            found.append((str(path.relative_to(PACKAGE)), ast.unparse(node)))
    return found


def test_the_package_keeps_no_fallback():
    found = [f for p in sorted(PACKAGE.rglob("*.py")) for f in _fallbacks(p)]
    assert [f for f in found if f not in NOT_CONFIG] == []
    assert set(NOT_CONFIG) <= set(found), "an allow-list entry that is gone: drop it"


def test_the_rules_keep_no_fallback():
    pattern = re.compile(r"""\.get\(\s*["'][\w.]+["']\s*,\s*(?!None\s*\))""")
    files = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    assert [(f.name, m.group()) for f in files for m in pattern.finditer(f.read_text())] == []


def _default_paths(node: dict, path: str, seen=()) -> list[str]:
    """Dotted config paths of every schema key with a `default` (`*`: any key of a mapping)."""
    if "$ref" in node:
        ref = node["$ref"]
        return [] if ref in seen else _default_paths(cfg._resolve(node), path, (*seen, ref))
    found = [path] if "default" in node else []
    for key, sub in node.get("properties", {}).items():
        found += _default_paths(sub, f"{path}.{key}".lstrip("."), seen)
    if isinstance(node.get("additionalProperties"), dict):
        found += _default_paths(node["additionalProperties"], f"{path}.*".lstrip("."), seen)
    return found


def test_every_schema_default_is_put_back_by_some_job():
    """A `default` nothing puts back would be a key a job reads and never gets."""
    slices = {path for kinds in cfg.SLICES.values() for path in kinds.values()}
    paths = _default_paths(cfg._schema(), "")
    assert "launch.compile" in paths and "stages.*.padding_free" in paths
    assert [p for p in paths if not any(p == s or p.startswith(s + ".") for s in slices)] == []


def test_keys_at_their_default_are_left_out_and_put_back():
    rl = copy.deepcopy(CONFIG["stages"]["rl"])
    sft = copy.deepcopy(CONFIG["stages"]["sft"])
    for at_default, stage in ((dict(rl, maskless_attention=False), rl), (dict(sft, padding_free=False), sft)):
        full = {"stage": at_default, "compile": True, "mixed_precision": "bf16", "node_gpus": 8}
        short = cfg.without_defaults(full, "train")
        assert "compile" not in short and not {"maskless_attention", "padding_free"} & set(short["stage"])
        assert cfg.job_params(json.dumps(short), "train") == full  # and no key the stage's type forbids
    on = {"stage": dict(rl, maskless_attention=True), "compile": False}
    assert cfg.without_defaults(on, "train") == on  # off its default: in the params, a change reruns
    data = {"data": copy.deepcopy(CONFIG["data"]["gsm8k"]), "prompt_training": "r1", "system_prompt": "S"}
    short = cfg.without_defaults(data, "gsm8k")
    assert "prompt_training" not in short and "level" not in short["data"]["synthetic"]
    assert cfg.job_params(json.dumps(short), "gsm8k") == data


def test_engines_take_gpu_memory_utilization_from_their_caller():
    """No engine defaults evaluation.gpu_memory_utilization (it was 0.9 there, 0.95 in config.yaml); the planned
    jobs' params carry config's value (tests/workflow/test_plan.py)."""
    for load in (generation.load, VLLMEngine):
        assert inspect.signature(load).parameters["gpu_memory_utilization"].default is inspect.Parameter.empty
