"""prep_report.json: what GSM8K cleaning did (cleaning.json) plus token-length statistics of the SFT rows.

A cheap rule of its own (report_gsm8k), so its report-only settings (config data.gsm8k.clean.max_length and
tokenizer_model) never rerun data preparation, and hence no training.

    python -m srlm.data.prep_report --cleaning cleaning.json --sft sft.jsonl --tokenizer MODEL_DIR \
        --max-length 8192 --out prep_report.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from srlm.data.io import cli, read_jsonl, write_json


def token_stats(sft_rows: list[dict], tokenizer_dir: str, max_length: int | None) -> dict:
    """Token lengths of the rendered SFT rows (chat template when the tokenizer has one)."""
    import numpy as np
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    texts = []
    for r in sft_rows:
        msgs = r["prompt"] + r["completion"]
        if tok.chat_template:
            texts.append(tok.apply_chat_template(msgs, tokenize=False))
        else:
            texts.append("\n".join(m["content"] for m in msgs))
    lengths = np.array([len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]])
    if not len(lengths):
        return {"n": 0}
    stats = {f"p{p}": int(np.percentile(lengths, p, method="nearest")) for p in (50, 90, 95, 99)}
    stats.update(n=len(lengths), mean=round(float(lengths.mean()), 2), max=int(lengths.max()))
    if max_length:
        stats.update(max_length=max_length, over_max_length=int((lengths > max_length).sum()))
    return stats


@cli
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cleaning", type=Path, required=True, help="cleaning.json of srlm.data.gsm8k")
    ap.add_argument("--sft", type=Path, required=True, help="sft.jsonl of srlm.data.gsm8k")
    ap.add_argument("--tokenizer", required=True, help="tokenizer folder")
    ap.add_argument("--max-length", type=int, default=None, help="count rows longer than this many tokens")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    report = {
        **json.loads(a.cleaning.read_text()),
        "token_lengths": token_stats(read_jsonl(a.sft), a.tokenizer, a.max_length),
    }
    write_json(a.out, report)
    print(json.dumps(report["token_lengths"]))


if __name__ == "__main__":
    main()
