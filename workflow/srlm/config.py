"""Configuration: schema validation with messages that name the key, and the runs the tables imply.

The chain syntax ("kd-lora+rl", "base") and the file layout belong to srlm.layout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from functools import cache
from pathlib import Path

import yaml

from srlm import layout
from srlm.tables import row_label

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
        if isinstance(err.instance, float) and any(e.validator_value == "integer" for e in err.context):
            return f"{where}: {err.instance!r} is not an integer"
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
    if err.validator is None:  # a `false` subschema: a key that this stage type (or a key beside it) excludes
        branch = _validator().schema
        for part in list(err.schema_path)[:-2]:
            branch = branch[part]
        keys = [k for k, v in branch["then"]["properties"].items() if v is False and k in node]
        why = "/".join(branch["if"].get("required", []))
        why = f"together with {why}" if why else f"for a stage of type {node.get('type')!r}"
        return f"{where}.{'/'.join(keys)}: not allowed {why}"
    return f"{where}: {err.message}"


@cache
def _schema() -> dict:
    # libyaml's loader where PyYAML has it: the pure-Python one spends ~0.2 s of every Snakemake start here.
    return yaml.load(SCHEMA.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@cache
def _validator():
    import jsonschema

    schema = _schema()
    # JSON Schema's `integer` accepts 2.0 (a float with no fraction); a float batch size or sample count fails
    # only inside the job, so here an integer is a Python int (never a bool).
    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool)
    )
    return jsonschema.validators.extend(base, type_checker=checker)(schema)


def _non_finite(node, parts=()) -> list[str]:
    """NaN and ±inf anywhere: they pass every minimum and maximum (a NaN threshold removes every mark, an
    infinite temperature samples noise that is graded and tabled)."""
    if isinstance(node, float) and not math.isfinite(node):
        return [f"{_path(parts)}: {node} is not a finite number"]
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _non_finite(v, (*parts, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _non_finite(v, (*parts, i))]
    return []


def validate(config: dict) -> dict:
    """Validate against the schema, then the cross-references; raise ConfigError naming every bad key."""
    errors = sorted(_validator().iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = _non_finite(config) + [_describe(e, config) for e in errors]
    if not problems:
        problems = _check_references(config) + _check_sources(config) + _check_sizes(config)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(dict.fromkeys(problems)))
    return config


def check(config: dict, files: list[str | Path] = ()) -> dict:
    """validate() for the Snakefile: a bad configuration ends the run with the message alone, no traceback.
    `files`: the config files Snakemake read (workflow.configfiles), re-read here for what its own loader lets
    through (a key given twice in one file: the last one wins silently)."""
    try:
        for f in files:
            load_yaml(f)
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
class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML's safe loader that refuses a key given twice in one mapping (PyYAML keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (first at line {first})", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path) -> dict:
    """A config file's mapping; a syntax error or a non-mapping raises ConfigError naming file and line
    (Snakemake's own message for an overlay that does not parse names neither)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        ctx = getattr(e, "context_mark", None)
        ctx = f" ({e.context} at line {ctx.line + 1})" if ctx and e.context else ""
        problem = getattr(e, "problem", None) or e
        kind = "YAML error" if isinstance(e, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise ConfigError(f"{path}{line}: {kind}: {problem}{ctx}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    if "__use_yte__" in data:  # Snakemake's loader evaluates such a file's ?-expressions as Python (YTE)
        raise ConfigError(
            f"{path}: __use_yte__: this workflow's config files are plain YAML; with this key Snakemake runs the "
            f"file's YTE expressions (Python code) as it loads it, before any check (docs/security.md)"
        )
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


def _duplicate_labels(section: str, entries: dict) -> list[str]:
    """Two models (stages, benchmarks) with one label make two table rows (columns) that read the same."""
    first: dict[str, str] = {}
    return [
        f"{section}.{key}.label: {e['label']!r} is also the label of {section}.{first[e['label']]}"
        for key, e in entries.items()
        if first.setdefault(e["label"], key) != key
    ]


# A chain (stage keys joined by "+") is one folder name: at most this many bytes (file systems allow 255).
MAX_NAME_BYTES = 200


def _check_references(config: dict) -> list[str]:
    problems = []
    models, stages, benches = config["models"], config["stages"], config["benchmarks"]
    for i, t in enumerate(config["targets"]):
        if t not in config["tables"]:
            problems.append(f"targets.{i}: {t!r} is not a table of `tables` ({', '.join(config['tables'])})")
    for section in ("models", "stages", "benchmarks"):
        problems += _duplicate_labels(section, config[section])
    for part in Path(config["results"]).parts:
        if len(part.encode()) > MAX_NAME_BYTES:
            problems.append(f"results: folder name {part[:40]!r}... is over {MAX_NAME_BYTES} bytes")
    for key, m in models.items():
        ref = m.get("same_weights_as")
        if ref is not None and (ref not in models or models[ref].get("same_weights_as")):
            problems.append(f"models.{key}.same_weights_as: {ref!r} is not a model with its own weights")
    from srlm.data.benchmarks import FORMATS

    for key, b in benches.items():
        if b["format"] not in FORMATS:
            problems.append(
                f"benchmarks.{key}.format: unknown format {b['format']!r} (one of {', '.join(FORMATS)}; a new "
                "layout is an entry of srlm.data.benchmarks.FORMATS, docs/howto.md)"
            )
    tok = config["data"]["gsm8k"]["clean"]["tokenizer_model"]
    if tok not in models:
        problems.append(f"data.gsm8k.clean.tokenizer_model: unknown model {tok!r}")
    for name, table in config["tables"].items():
        for i, col in enumerate(table["columns"]):
            if col not in benches:
                problems.append(f"tables.{name}.columns.{i}: unknown benchmark {col!r}")
        runs: dict[tuple, str] = {}
        for s, section in enumerate(table["sections"]):
            labels: dict[str, int] = {}
            for r, row in enumerate(section["rows"]):
                where = f"tables.{name}.sections.{s}.rows.{r}"
                if len(row["paper"]) != len(table["columns"]):
                    problems.append(f"{where}.paper: {len(row['paper'])} values for {len(table['columns'])} columns")
                if not row.get("cited"):
                    if row["model"] not in models:
                        problems.append(f"{where}.model: unknown model {row['model']!r}")
                    undefined = [st for st in layout.stages(row["chain"]) if st not in stages]
                    for stage in undefined:
                        problems.append(f"{where}.chain: {row['chain']!r} names undefined stage {stage!r}")
                    if len(row["chain"].encode()) > MAX_NAME_BYTES:
                        problems.append(f"{where}.chain: over {MAX_NAME_BYTES} bytes (it names a folder)")
                    seen = runs.setdefault((row["model"], row["chain"]), where)
                    if seen != where:
                        problems.append(f"{where}: the same model and chain as {seen}")
                    if row["model"] not in models or undefined:
                        continue
                label = row.get("label") or row_label(row, models, stages)
                if labels.setdefault(label, r) != r:
                    problems.append(f"{where}: label {label!r} is also that of row {labels[label]} of its section")
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



# ---- a job's params: values at their schema `default` are left out ------------------------------------------
# config.yaml states every value and the schema requires every key; a key that came after jobs had finished
# (a speed switch, an option) also has a schema `default`: the value that does what those jobs did. A job's
# params, Snakemake's rerun trigger, leave such a key out while it holds that value (`without_defaults`, in
# common.smk's arg()), so adding one reruns nothing; the job's params loader puts it back (`job_params`). Both
# follow SLICES: where in each kind of job's params a config slice sits, and the schema node of that slice.
SLICES = {
    "train": {("stage",): "stages.*", ("compile",): "launch.compile"},
    "gsm8k": {("data",): "data.gsm8k", ("prompt_training",): "prompt.training"},
    "kd": {("data",): "data.kd", ("prompt_training",): "prompt.training"},
    "benchmark": {(): "benchmarks.*"},
}


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        node = _schema()["$defs"][node["$ref"].removeprefix("#/$defs/")]
    return node


def _schema_node(path: str) -> dict:
    """The schema of a config key by its dotted path (`*`: any key of a mapping, as stages.*)."""
    node = _schema()
    for part in path.split("."):
        node = _resolve(node)
        node = node["additionalProperties"] if part == "*" else node["properties"][part]
    return _resolve(node)


def _forbidden(node: dict, value: dict) -> set[str]:
    """Keys an `allOf` branch of `node` forbids for this value (a sft stage has no maskless_attention)."""
    off = set()
    for branch in node.get("allOf", []):
        cond = branch["if"]
        if set(cond) == {"properties"} and all(
            k in value and (value[k] == c["const"] if "const" in c else value[k] in c["enum"])
            for k, c in cond["properties"].items()
        ):
            off |= {k for k, v in branch["then"].get("properties", {}).items() if v is False}
    return off


def _walk(value: dict, node: dict, fill: bool) -> None:
    off = _forbidden(node, value)
    for key, sub in node.get("properties", {}).items():
        sub = _resolve(sub)
        if key in off:
            continue
        if "default" in sub:
            if fill:
                value.setdefault(key, sub["default"])
            elif key in value and value[key] == sub["default"] and type(value[key]) is type(sub["default"]):
                del value[key]
        elif isinstance(value.get(key), dict):
            _walk(value[key], sub, fill)


def _apply(params: dict, kind: str, fill: bool) -> dict:
    params = json.loads(json.dumps(params))  # a copy: the caller's slices stay whole
    for where, path in SLICES[kind].items():
        *parents, last = where or (None,)
        node = params
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not where:
            _walk(params, _schema_node(path), fill)
        elif isinstance(node, dict):
            _walk(node, {"properties": {last: _schema_node(path)}}, fill)
    return params


def without_defaults(params: dict, kind: str) -> dict:
    """A job's params (the rerun trigger) less the keys of its SLICES that hold their schema default."""
    return _apply(params, kind, fill=False)


def job_params(text: str, kind: str) -> dict:
    """A job's --params (JSON) with the keys that `without_defaults` left out put back at their schema default."""
    return _apply(json.loads(text), kind, fill=True)


if __name__ == "__main__":
    main()
