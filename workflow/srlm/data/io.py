"""JSONL/JSON reading and writing shared by the data modules.

Outputs must be byte-identical for the same input (Snakemake reruns, CI diffs), so writing is fixed:
UTF-8, `ensure_ascii=False`, keys in insertion order, one row per line, "\n" line ends, atomic rename.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file; a bad line raises ValueError naming file and line number."""
    return [row for _, row in read_jsonl_numbered(path)]


def read_jsonl_numbered(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, row) pairs, blank lines skipped, so later checks can name the line too."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append((lineno, row))
    return rows


def _write_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)


# Characters str.splitlines() treats as line breaks that json.dumps(ensure_ascii=False) leaves raw
# (GSM8K has U+2028): escaped so that every reader sees one row per line.
_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def dumps_line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False).translate(_LINE_BREAKS) + "\n"


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    _write_atomic(path, "".join(dumps_line(r) for r in rows))


def write_json(path: str | Path, obj: Any) -> None:
    _write_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def messages(system_prompt: str, question: str) -> list[dict]:
    """The fixed prompt of SFT, KD and RL rows: system message, then the problem as the user turn."""
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": question}]


def sft_row(row_id: str, system_prompt: str, question: str, completion: str, answer: str) -> dict:
    return {
        "id": row_id,
        "prompt": messages(system_prompt, question),
        "completion": [{"role": "assistant", "content": completion}],
        "answer": answer,
    }


def format_completion(think: str, answer: str) -> str:
    """The R1-style target the format reward checks: `<think>…</think>\\n<answer>N</answer>`."""
    return f"<think>{think.strip()}</think>\n<answer>{answer}</answer>"
