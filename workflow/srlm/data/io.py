"""JSONL/JSON reading and writing shared by the data modules.

Outputs must be byte-identical for the same input (Snakemake reruns, CI diffs), so writing is fixed:
UTF-8, `ensure_ascii=False`, keys in insertion order, one row per line, "\n" line ends, atomic rename.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A data file or row that cannot be used; the message starts with where it is (file:line, 1-based)."""


def read_jsonl(path: str | Path, *, nonempty: bool = False) -> list[dict]:
    """Rows of a JSONL file; a bad line raises DataError naming file and line number."""
    return [row for _, row in read_jsonl_numbered(path, nonempty=nonempty)]


def read_jsonl_numbered(path: str | Path, *, nonempty: bool = False) -> list[tuple[int, dict]]:
    """(line number, row) pairs, blank lines skipped, so later checks can name the line too. Every line must
    be UTF-8 and a JSON object; `nonempty`: a file without rows is an error too."""
    rows = []
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    for lineno, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            where = f"byte {raw[e.start]:#04x} at column {e.start + 1}"
            raise DataError(f"{path}:{lineno}: not UTF-8 ({where})") from None
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        if "\\u" in line:  # an escape may hide a lone surrogate (valid JSON, yet no text: no UTF-8 for it)
            try:
                json.dumps(row, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError as e:
                bad = f"\\u{ord(e.object[e.start]):04x}"
                raise DataError(f"{path}:{lineno}: a lone surrogate {bad} in a string (not a character)") from None
        rows.append((lineno, row))
    if nonempty and not rows:
        raise DataError(f"{path}: no rows (empty file)")
    return rows


def read_metrics(path: str | Path) -> list[dict]:
    """Records of a training job's metrics JSONL (one per logging step), [] if there is none. A last line cut
    short by a kill is skipped (the resumed job rewrites the log); a bad line elsewhere names file and line."""
    path = Path(path)
    if not path.exists():
        return []
    lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    out = []
    for k, (n, line) in enumerate(lines):
        try:
            out.append(json.loads(line))
        except ValueError as e:
            if k < len(lines) - 1:
                raise ValueError(f"{path}:{n}: not JSON ({e})") from e
    return out


def cli(main: Callable) -> Callable:
    """Entry point wrapper: a DataError (or a config ValueError the module raises on purpose) ends the
    command with its one-line message and exit status 1, not a traceback."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except DataError as e:
            sys.exit(f"error: {e}")

    return wrapped


def write_text(path: str | Path, text: str) -> None:
    """`text` as the whole of `path`, written to a temporary file then renamed: a failure leaves the previous
    file as it was."""
    _write_atomic(path, text)


def _write_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8", newline="\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write leaves neither a partial file nor its .tmp


# Characters str.splitlines() treats as line breaks that json.dumps(ensure_ascii=False) leaves raw
# (GSM8K has U+2028): escaped so that every reader sees one row per line.
_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def dumps_line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False).translate(_LINE_BREAKS) + "\n"


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    _write_atomic(path, "".join(dumps_line(r) for r in rows))


def write_json(path: str | Path, obj: Any) -> None:
    _write_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


# config prompt.training: how SFT, KD and RL rows ask (srlm.data.io.messages).
# A gold that graders read as a number: ASCII digits only (\d would take "１２", which no grader parses).
PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")

TRAINING_FORMS = ("r1", "paper")


def messages(system_prompt: str, question: str, form: str = "r1") -> list[dict]:
    """The fixed prompt of SFT, KD and RL rows. "r1": the system message, then the problem as the user turn (the
    reference recipe's training prompt); "paper": the paper evaluation protocol's prompt instead (srlm.prompts: no
    system message, the query template around the problem as the user turn), so training asks as evaluation does."""
    if form == "paper":
        from srlm import prompts

        return prompts.messages(question, "paper")
    if form != "r1":
        raise ValueError(f"prompt.training must be one of {list(TRAINING_FORMS)}, got {form!r}")
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": question}]


def sft_row(row_id: str, system_prompt: str, question: str, completion: str, answer: str, form: str = "r1") -> dict:
    return {
        "id": row_id,
        "prompt": messages(system_prompt, question, form),
        "completion": [{"role": "assistant", "content": completion}],
        "answer": answer,
    }


def format_completion(think: str, answer: str) -> str:
    """The target of every SFT/KD row, the form the GRPO rewards check and the paper-protocol grader reads:
    `<think>…</think>\\n<answer>\\boxed{N}</answer>` (Open-RS's system prompt asks for the reasoning and the answer in
    the tags and the final answer within \\boxed{}; lighteval's extractive match reads the box, never a bare
    `<answer>N</answer>`: docs/fidelity.md "The answer form")."""
    return f"<think>{think.strip()}</think>\n<answer>\\boxed{{{answer}}}</answer>"
