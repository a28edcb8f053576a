"""Cleaning of training questions, shared by GSM8K (srlm.data.gsm8k) and the KD rows (srlm.data.distill):
exact and normalized deduplication, and n-gram decontamination against the benchmark problems.

Settings: config `data.gsm8k.clean` (`dedup`: bool; `decontaminate`: {ngram, threshold}, or null = off).
Rows are dicts with "id" and "question"; what each step dropped is logged by id.
"""

from __future__ import annotations

import re
from collections import Counter

from srlm.data.io import DataError, read_jsonl


def norm_text(text: str) -> str:
    """Key for near-exact duplicates: case, punctuation and whitespace ignored."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def dedup(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Keep the first of each question; log the rest as exact or normalized duplicates."""
    exact, normal, kept, log = {}, {}, [], []
    for r in rows:
        q, k = r["question"], norm_text(r["question"])
        if q in exact:
            log.append({"id": r["id"], "duplicate_of": exact[q], "kind": "exact"})
        elif k in normal:
            log.append({"id": r["id"], "duplicate_of": normal[k], "kind": "normalized"})
        else:
            exact[q], normal[k] = r["id"], r["id"]
            kept.append(r)
    return kept, log


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Word n-grams of the normalized text; a text shorter than n is one gram (so it can still match)."""
    words = norm_text(text).split()
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def decontaminate(rows: list[dict], bench: dict[str, list[dict]], n: int, threshold: float):
    """Drop rows whose question shares >= threshold of its n-grams with the benchmark problems.

    bench maps a file name to its rows ({"id","problem",...}). Each dropped row is logged with the
    fraction and the benchmark problem that shares the most n-grams with it.
    """
    index: dict[tuple[str, ...], list[str]] = {}
    for name, brows in bench.items():
        for b in brows:
            for g in ngrams(b["problem"], n):
                index.setdefault(g, []).append(f"{name}:{b['id']}")
    kept, log = [], []
    for r in rows:
        grams = ngrams(r["question"], n)
        hits = [g for g in grams if g in index]
        frac = len(hits) / len(grams) if grams else 0.0
        if hits and frac >= threshold:
            best = Counter(x for g in hits for x in dict.fromkeys(index[g])).most_common(1)[0][0]
            log.append({"id": r["id"], "overlap": round(frac, 4), "benchmark": best})
        else:
            kept.append(r)
    return kept, log


def clean(rows: list[dict], settings: dict, bench_files: list[str] = ()) -> tuple[list[dict], dict]:
    """Deduplicate when `settings["dedup"]`, then decontaminate against `bench_files` when
    `settings["decontaminate"]` is set (null: off). Returns the kept rows and the report's fields
    (None for a step that did not run). Benchmark files must be given exactly when decontamination is on: the
    rule passes none when it is off, so a mismatch is a bug, not a setting."""
    report = {"duplicates": None, "contaminated": None, "decontamination": None}
    if settings["dedup"]:
        rows, log = dedup(rows)
        report.update(duplicates=len(log), duplicate_rows=log)
    dc = settings["decontaminate"]
    if dc is None:
        if bench_files:
            raise ValueError("benchmark files given (--bench) but decontamination is off (null)")
        return rows, report
    if not bench_files:
        raise DataError("decontamination is on (clean.decontaminate) but no benchmark file given (--bench)")
    n, threshold = int(dc["ngram"]), float(dc["threshold"])
    bench = {str(f): read_jsonl(f) for f in bench_files}
    for f, brows in bench.items():
        if not brows:  # decontaminating against nothing would silently keep every row
            raise DataError(f"{f}: no rows (empty benchmark file): nothing to decontaminate against")
    rows, log = decontaminate(rows, bench, n, threshold)
    report.update(decontamination={"ngram": n, "threshold": threshold, "benchmarks": sorted(bench)},
                  contaminated=len(log), contaminated_rows=log)  # fmt: skip
    return rows, report
