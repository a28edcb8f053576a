"""GSM8K training data: CoT-formatted SFT rows and GRPO prompt rows (§3.1), from the hub, a local folder
in the openai/grade-school-math format, or the synthetic generator.

Outputs, each at the path its flag names (srlm.layout's gsm8k files under the workflow): --train (the kept raw
rows, with ids), --test (raw test rows), --sft, --rl (JSONL, fixed schemas, see .agents/CONTEXT.md) and
--cleaning (JSON: what each step dropped; srlm.data.prep_report adds token-length statistics to it).

Cleaning (params data.clean: config data.gsm8k.clean, each step off by its own value): exact/normalized dedup,
n-gram decontamination against benchmark files (--bench, given exactly when clean.decontaminate is set; srlm.data.clean),
malformed-row handling.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping
from pathlib import Path

from srlm.config import job_params
from srlm.data.clean import clean as clean_rows
from srlm.data.io import (
    PLAIN_NUMBER,
    DataError,
    cli,
    format_completion,
    messages,
    read_jsonl_numbered,
    sft_row,
    write_json,
    write_jsonl,
)

# What prepare() writes: the keys of its `out` argument and the CLI's flags.
FILES = ("train", "test", "sft", "rl", "cleaning")
_CALC = re.compile(r"<<[^<>]*>>")


class MalformedRow(DataError):
    """A raw GSM8K row that cannot be used; the message names its origin (file:line or hub index)."""


def final_answer(answer_text: str) -> str:
    """Gold answer after the last '####', thousands separators removed ('#### 1,600' -> '1600')."""
    if "####" not in answer_text:
        raise ValueError(f"no '####' line in answer: {answer_text[-80:]!r}")
    ans = answer_text.rsplit("####", 1)[1].strip().replace(",", "")
    if not PLAIN_NUMBER.fullmatch(ans):
        raise ValueError(f"final answer {ans!r} is not a number")
    return ans


def strip_calculator(text: str) -> str:
    """Remove GSM8K calculator annotations ('48/2 = <<48/2=24>>24' -> '48/2 = 24')."""
    return _CALC.sub("", text)


def cot_completion(answer_text: str) -> str:
    """'<think>worked solution</think>\\n<answer>N</answer>' from an openai-format answer."""
    work = strip_calculator(answer_text.rsplit("####", 1)[0])
    return format_completion(work, final_answer(answer_text))


def check_row(row: dict, origin: str) -> tuple[str, str, str]:
    """(question, answer text, final answer) of a raw row, or MalformedRow naming where it came from."""
    q, a = row.get("question"), row.get("answer")
    if not isinstance(q, str) or not q.strip():
        raise MalformedRow(f"{origin}: empty or missing 'question'")
    if not isinstance(a, str):
        raise MalformedRow(f"{origin}: missing 'answer'")
    try:
        return q.strip(), a.strip(), final_answer(a)
    except ValueError as e:
        raise MalformedRow(f"{origin}: {e}") from None


def load_raw(data: dict) -> dict[str, list[tuple[str, dict]]]:
    """{'train': [(origin, row)], 'test': [...]} for data.source hub | local | synthetic."""
    src = data.get("source")
    if src == "hub":
        import datasets

        ds = datasets.load_dataset(data["hub_id"], data.get("hub_config"))
        hub = data["hub_id"]
        out = {s: [(f"{hub}[{s}][{i}]", dict(r)) for i, r in enumerate(ds[s])] for s in ("train", "test")}
        for s, rows in out.items():
            if not rows:
                raise DataError(f"{hub}[{s}]: no rows")
        return out
    if src == "local":
        if not data.get("local_dir"):
            raise ValueError("data.gsm8k.local_dir must be set when source is local")
        out = {}
        for s in ("train", "test"):
            path = Path(data["local_dir"]) / f"{s}.jsonl"
            out[s] = [(f"{path}:{ln}", r) for ln, r in read_jsonl_numbered(path, nonempty=True)]
        return out
    if src == "synthetic":
        from srlm.data.synthetic import gsm8k_rows

        syn = data["synthetic"]
        return {
            s: [
                (f"synthetic[{s}][{i}]", r)
                for i, r in enumerate(gsm8k_rows(syn[f"n_{s}"], syn["seed"], f"gsm8k-{s}", syn["level"]))
            ]
            for s in ("train", "test")
        }
    raise ValueError(f"data.gsm8k.source: unknown source {src!r} (hub|local|synthetic)")


# ---------------------------------------------------------------- main


def prepare(params: dict, out: Mapping[str, str | Path], bench_files: list[str] = ()) -> dict:
    """Write train/test/sft/rl JSONL and the cleaning JSON to out[name] for each name of FILES; cleaning steps
    run only when configured."""
    data, system_prompt = params["data"], params["system_prompt"]
    form = params["prompt_training"]  # config prompt.training
    clean = data["clean"]  # config data.gsm8k.clean less its report-only keys
    on_malformed = clean["on_malformed"]
    if on_malformed not in ("error", "drop"):
        raise ValueError(f"data.gsm8k.clean.on_malformed: {on_malformed!r} (error|drop)")
    raw = load_raw(data)
    splits, malformed = {}, []
    for split, items in raw.items():
        rows = []
        for i, (origin, r) in enumerate(items):
            try:
                q, a, _ = check_row(r, origin)
            except MalformedRow as e:
                if on_malformed == "error":
                    raise
                malformed.append(str(e))
                continue
            rows.append({"id": str(r.get("id", f"gsm8k-{split}-{i}")), "question": q, "answer": a})
        splits[split] = rows
    train = splits["train"]
    report = {"source": data["source"], "rows_in": len(raw["train"]), "test_rows_in": len(raw["test"]),
              "malformed": len(malformed), "malformed_rows": malformed}  # fmt: skip
    train, cleaning = clean_rows(train, clean, bench_files)
    report.update(cleaning)
    if not train:  # the SFT/RL sets would be empty: fail here, naming why, not in the tokenizer or a trainer
        counts = {k: report.get(k) for k in ("rows_in", "malformed", "duplicates", "contaminated")}
        raise DataError(f"GSM8K ({data['source']}): no train rows left after cleaning ({counts})")
    sft, rl = [], []
    for r in train:
        gold = final_answer(r["answer"])
        sft.append(sft_row(r["id"], system_prompt, r["question"], cot_completion(r["answer"]), gold, form))
        rl.append({"id": r["id"], "prompt": messages(system_prompt, r["question"], form), "answer": gold})
    report.update(rows_out=len(train), test_rows_out=len(splits["test"]))
    write_jsonl(out["train"], train)
    write_jsonl(out["test"], splits["test"])
    write_jsonl(out["sft"], sft)
    write_jsonl(out["rl"], rl)
    write_json(out["cleaning"], report)
    return report


@cli
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--params", required=True, help='JSON: {"data": <config data.gsm8k>, "system_prompt": str}'
    )
    for name in FILES:
        ap.add_argument(f"--{name}", required=True, help=f"where the {name} file goes")
    ap.add_argument(
        "--bench", nargs="*", default=[], help="normalized benchmark JSONL files to decontaminate against"
    )
    a = ap.parse_args(argv)
    rep = prepare(job_params(a.params, "gsm8k"), {name: getattr(a, name) for name in FILES}, a.bench)
    print(json.dumps({k: v for k, v in rep.items() if not isinstance(v, list)}))


if __name__ == "__main__":
    main()
