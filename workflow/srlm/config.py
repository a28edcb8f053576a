"""Configuration: schema validation with messages that name the key, and the runs the tables imply.

The chain syntax ("kd-lora+rl", "base") and the file layout belong to srlm.layout.
"""

from __future__ import annotations

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
            hint = " (YAML reads 1e-5 as a string: write 1.0e-5)"
        except ValueError:
            pass
        return f"{where}: {err.instance!r} is a string, expected {err.validator_value}{hint}"
    if err.validator == "oneOf" and err.context:
        best = min(err.context, key=lambda e: len(list(e.absolute_path)))
        return f"{where}: {best.message}"
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

    schema = yaml.safe_load(SCHEMA.read_text())
    return jsonschema.Draft202012Validator(schema)


def validate(config: dict) -> dict:
    """Validate against the schema, then the cross-references; raise ConfigError naming every bad key."""
    errors = sorted(_validator().iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = [_describe(e, config) for e in errors]
    if not problems:
        problems = _check_references(config)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(dict.fromkeys(problems)))
    return config


def _check_references(config: dict) -> list[str]:
    problems = []
    models, stages, benches = config["models"], config["stages"], config["benchmarks"]
    for key, m in models.items():
        ref = m.get("same_weights_as")
        if ref is not None and (ref not in models or models[ref].get("same_weights_as")):
            problems.append(f"models.{key}.same_weights_as: {ref!r} is not a model with its own weights")
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

