"""Configuration: schema validation with messages that name the key, and the runs the tables imply.

The chain syntax ("kd-lora+rl", "base") and the file layout belong to srlm.layout.
"""

from __future__ import annotations

import argparse
import sys
from functools import cache
from pathlib import Path

import yaml

from srlm import layout

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration problem; the message starts with the dotted path of the offending key."""


def _path(parts) -> str:
    return ".".join(str(p) for p in parts) or "<root>"


def _describe(err, config: dict) -> str:
    where = _path(err.absolute_path)
    node = config
    for part in err.absolute_path:
        node = node[part]
    if err.validator == "additionalProperties" or err.validator == "unevaluatedProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {}))) if isinstance(
            err.instance, dict
        ) else []
        keys = [f"{where}.{k}" if where != "<root>" else k for k in extra]
        return f"{', '.join(keys) or where}: unknown key (not in workflow/schemas/config.schema.yaml)"
    if err.validator == "type" and isinstance(err.instance, str):
        hint = ""
        try:
            float(err.instance)
            scientific = "e" in err.instance.lower()
            hint = " (YAML reads 1e-5 as a string: write 1.0e-5)" if scientific else " (unquote it)"
        except ValueError:
            pass
        return f"{where}: {err.instance!r} is a string, expected {err.validator_value}{hint}"
    if err.validator in ("oneOf", "anyOf") and err.context:
        # Report the branch whose type fits (lora: {r: 0} -> lora.r), not "lora is not of type 'null'".
        depth = len(err.absolute_path)
        wrong_type = {e.relative_schema_path[0] for e in err.context
                      if e.validator == "type" and len(e.absolute_path) == depth}  # fmt: skip
        fitting = [e for e in err.context if e.relative_schema_path[0] not in wrong_type]
        deeper = [e for e in fitting if len(e.absolute_path) > depth]
        if deeper or len(fitting) == 1:
            from jsonschema.exceptions import best_match

            return _describe(best_match(deeper or fitting), config)
        if fitting:
            return f"{where}: " + " or ".join(e.message for e in fitting)
        branches = ", ".join(str(e.validator_value) for e in err.context)
        return f"{where}: {err.instance!r} is none of: {branches}"
    if err.validator is None:  # a `false` subschema: a key that this stage type does not take
        props = _validator().schema
        for part in err.schema_path:
            props = props[part]
        keys = [k for k, v in props.items() if v is False and k in node]
        return f"{where}.{'/'.join(keys)}: not allowed for a stage of type {node.get('type')!r}"
    return f"{where}: {err.message}"


@cache
def _validator():
    import jsonschema

    # libyaml's loader where PyYAML has it: the pure-Python one spends ~0.2 s of every Snakemake start here.
    schema = yaml.load(SCHEMA.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return jsonschema.Draft202012Validator(schema)


def validate(config: dict) -> dict:
    """Validate against the schema, then the cross-references; raise ConfigError naming every bad key."""
    errors = sorted(_validator().iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = [_describe(e, config) for e in errors]
    if not problems:
        problems = _check_references(config) + _check_sources(config) + _check_sizes(config)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(dict.fromkeys(problems)))
    return config


def check(config: dict) -> dict:
    """validate() for the Snakefile: a bad configuration ends the run with the message alone, no traceback."""
    try:
        return validate(config)
    except ConfigError as e:
        sys.exit(str(e))


# What each data source needs, by config section: {source: {key: what}}. What: "set" (not null), "file" (an
# existing file), ("dir", names...) (an existing folder holding those files), ("keys", names...) (a mapping
# with those keys). Paths are relative to the working directory, as in the jobs.
_SOURCE_NEEDS = {
    "models": {"hub": {"hub_id": "set"}, "local": {"local_path": ("dir", "config.json")},
               "random": {"local_path": ("dir", "config.json")}},
    "gsm8k": {"hub": {"hub_id": "set"}, "local": {"local_dir": ("dir", "train.jsonl", "test.jsonl")},
              "synthetic": {"synthetic": ("keys", "n_train", "n_test", "seed")}},
    "kd": {"hub": {"hub_id": "set"}, "local": {"local_path": "file"},
           "synthetic": {"synthetic": ("keys", "n_train", "seed")}, "generate": {"generate": "set"}},
    "benchmarks": {"hub": {"hub_id": "set", "hub_split": "set"}, "local": {"local_path": "file"},
                   "synthetic": {"synthetic": ("keys", "n", "seed")}},
}  # fmt: skip


LOCAL_DATA_HINT = (
    "local data: these are copies of public files (GSM8K, the five benchmarks) that the repository does not "
    "hold; docs/data.md says where to download each one, its format and where to put it (../shared/data beside "
    "the checkout, as config/local-data.yaml and config/smollm2.yaml expect; or change the paths above)"
)


def _source_problem(where: str, source: str, value, what) -> str | None:
    need = f"needed when source is {source}"
    if value is None:
        return f"{where}: not set ({need})"
    if what == "set":
        return None
    if what[0] == "keys":
        missing = [k for k in what[1:] if k not in value]
        return f"{where}: lacks {', '.join(missing)} ({need})" if missing else None
    path = Path(value)
    if what == "file" and not path.is_file():
        return f"{where}: no file {str(path)!r} (relative to the working directory {Path.cwd()})"
    if what != "file":
        if not path.is_dir():
            return f"{where}: no folder {str(path)!r} (relative to the working directory {Path.cwd()})"
        missing = [n for n in what[1:] if not (path / n).is_file()]
        if missing:
            return f"{where}: folder {str(path)!r} has no {', '.join(missing)}"
    return None


def _check_sources(config: dict) -> list[str]:
    """Every data and model source names what it needs, and local files exist: a missing one must stop the
    run before planning, not fail one job in the middle of the grid."""
    entries = [("models", f"models.{k}", m) for k, m in config["models"].items()]
    entries += [(k, f"data.{k}", config["data"][k]) for k in ("gsm8k", "kd")]
    entries += [("benchmarks", f"benchmarks.{k}", b) for k, b in config["benchmarks"].items()]
    problems, local_missing = [], False
    for section, where, entry in entries:
        source = entry["source"]
        for key, what in _SOURCE_NEEDS[section].get(source, {}).items():
            problem = _source_problem(f"{where}.{key}", source, entry.get(key), what)
            if problem:
                problems.append(problem)
                local_missing |= source == "local" and section != "models"
    if local_missing:
        problems.append(LOCAL_DATA_HINT)
    ds = config["launch"]["deepspeed"]
    if ds is not None and not Path(ds).is_file():
        problems.append(f"launch.deepspeed: no file {ds!r} (relative to the working directory {Path.cwd()})")
    return problems


def _check_sizes(config: dict) -> list[str]:
    """Numbers that are each valid but not together."""
    problems = []
    ev = config["evaluation"]
    for name, b in config["benchmarks"].items():
        tokens = {**ev["generation"], **b["generation"]}["max_new_tokens"]
        if tokens > ev["max_model_length"]:
            own = "max_new_tokens" in b["generation"]
            key = f"benchmarks.{name}.generation" if own else "evaluation.generation"
            problems.append(
                f"{key}.max_new_tokens: {tokens} exceeds evaluation.max_model_length "
                f"({ev['max_model_length']}), which must hold prompt and answer"
            )
    tiny = config["tiny_model"]
    if tiny["hidden_size"] % tiny["num_attention_heads"]:
        problems.append("tiny_model.num_attention_heads: must divide hidden_size")
    if tiny["num_attention_heads"] % tiny["num_key_value_heads"]:
        problems.append("tiny_model.num_key_value_heads: must divide num_attention_heads")
    for key, st in config["stages"].items():
        if st["max_steps"] == 0:
            problems.append(f"stages.{key}.max_steps: 0 trains nothing (-1: run num_train_epochs)")
    for name, table in config["tables"].items():
        for i, col in enumerate(table["columns"]):
            if col in table["columns"][:i]:
                problems.append(f"tables.{name}.columns.{i}: {col!r} listed twice")
    return problems


# ---- configuration files, as Snakemake reads them ----------------------------------------------------------
def load_yaml(path: str | Path) -> dict:
    """A config file's mapping; a syntax error or a non-mapping raises ConfigError naming file and line
    (Snakemake's own message for an overlay that does not parse names neither)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        ctx = getattr(e, "context_mark", None)
        ctx = f" ({e.context} at line {ctx.line + 1})" if ctx and e.context else ""
        problem = getattr(e, "problem", None) or e
        raise ConfigError(f"{path}{line}: YAML syntax error: {problem}{ctx}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def merge(base: dict, overlay: dict) -> dict:
    """Snakemake's overlay rule: mappings merge key by key, anything else is replaced."""
    for k, v in overlay.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base


def load(configfiles: list[str | Path]) -> dict:
    """config.yaml then the overlays, merged as `snakemake --configfile A B` merges them."""
    config: dict = {}
    for f in configfiles:
        merge(config, load_yaml(f))
    return config


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description="Check config.yaml and overlays as the workflow will (without starting Snakemake); "
        "a YAML error is reported with its file and line."
    )
    ap.add_argument("--configfile", nargs="*", default=[], help="overlays, in the order given to snakemake")
    ap.add_argument("--base", default="config.yaml", help="the workflow's config file (default: %(default)s)")
    a = ap.parse_args(argv)
    try:
        validate(load([a.base, *a.configfile]))
    except ConfigError as e:
        sys.exit(str(e))
    print("configuration is valid")


def _check_references(config: dict) -> list[str]:
    problems = []
    models, stages, benches = config["models"], config["stages"], config["benchmarks"]
    for key, m in models.items():
        ref = m.get("same_weights_as")
        if ref is not None and (ref not in models or models[ref].get("same_weights_as")):
            problems.append(f"models.{key}.same_weights_as: {ref!r} is not a model with its own weights")
    from srlm.data.benchmarks import FORMATS

    for key, b in benches.items():
        if b["format"] not in FORMATS:
            problems.append(
                f"benchmarks.{key}.format: unknown format {b['format']!r} (one of {', '.join(FORMATS)}; a new "
                "layout is an entry of srlm.data.benchmarks.FORMATS, docs/adding.md)"
            )
    tok = config["data"]["gsm8k"].get("clean", {}).get("tokenizer_model")
    if tok is not None and tok not in models:
        problems.append(f"data.gsm8k.clean.tokenizer_model: unknown model {tok!r}")
    for name, table in config["tables"].items():
        for i, col in enumerate(table["columns"]):
            if col not in benches:
                problems.append(f"tables.{name}.columns.{i}: unknown benchmark {col!r}")
        for s, section in enumerate(table["sections"]):
            for r, row in enumerate(section["rows"]):
                where = f"tables.{name}.sections.{s}.rows.{r}"
                if len(row["paper"]) != len(table["columns"]):
                    problems.append(f"{where}.paper: {len(row['paper'])} values for {len(table['columns'])} columns")
                if row.get("cited"):
                    continue
                if row["model"] not in models:
                    problems.append(f"{where}.model: unknown model {row['model']!r}")
                for stage in layout.stages(row["chain"]):
                    if stage not in stages:
                        problems.append(f"{where}.chain: {row['chain']!r} names undefined stage {stage!r}")
    for key, st in stages.items():
        if st["type"] == "grpo" and st["per_device_train_batch_size"] % st["num_generations"]:
            problems.append(
                f"stages.{key}.per_device_train_batch_size: must be divisible by num_generations "
                f"({st['per_device_train_batch_size']} % {st['num_generations']})"
            )
    return problems


def table_runs(config: dict, table: str) -> list[tuple[str, str]]:
    """The (model, chain) pairs a table evaluates, in row order, without duplicates and cited rows."""
    rows = [r for s in config["tables"][table]["sections"] for r in s["rows"] if not r.get("cited")]
    return list(dict.fromkeys((r["model"], r["chain"]) for r in rows))



if __name__ == "__main__":
    main()
