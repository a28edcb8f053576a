"""GRPO reward functions of the paper (§3.3): format reward (eq. 1) and accuracy reward (eq. 2), each ±1.

Both read the answer form the SFT/KD targets teach and the paper-protocol grader reads (srlm.data.io.
format_completion): `<think>…</think>` then `<answer>` holding a `\\boxed{}` final answer, as the paper's
reference recipe (Open-RS) prompts for and rewards (docs/fidelity.md "The answer form").

They follow TRL's reward signature `f(completions, **kwargs) -> list[float]`, where kwargs hold the dataset
columns (here `answer`, the gold). The factories return `functools.partial`s of module-level functions, the
form TRL keeps picklable for its async rollout worker, with `__name__` set because TRL logs rewards by name.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

from srlm.grading import boxed_answer, last_boxed, verify

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_FORMAT = re.compile(r"\s*<think>.*?</think>\s*<answer>(?P<answer>.*?)</answer>\s*", re.DOTALL)


def completion_text(completion: str | Sequence[dict]) -> str:
    """Text of a completion: a string as is; a conversational one (list of message dicts) as the contents of
    its assistant messages, joined (a message without a role counts as the assistant's)."""
    if isinstance(completion, str):
        return completion
    parts = []
    for message in completion:
        if not isinstance(message, dict):
            raise TypeError(f"completion is neither a string nor a list of message dicts: {completion!r}")
        if message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content") or ""
        if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        parts.append(content)
    return "".join(parts)


def format_ok(text: str) -> bool:
    """The paper's format: `<think>…</think>` then `<answer>…</answer>` holding a complete, non-empty
    `\\boxed{}`, one of each tag, in that order, and only whitespace around and between the two blocks."""
    if any(text.count(tag) != 1 for tag in _TAGS):
        return False
    match = _FORMAT.fullmatch(text)
    boxed = last_boxed(match["answer"]) if match else None
    return bool(boxed and boxed.strip())


def format_reward(
    completions: Sequence, *, reward_correct: float = 1.0, reward_incorrect: float = -1.0, **_: object
) -> list[float]:
    """Eq. 1 over a batch (TRL passes dataset columns and trainer hooks as extra keywords, ignored here)."""
    return [reward_correct if format_ok(completion_text(c)) else reward_incorrect for c in completions]


def accuracy_reward(
    completions: Sequence,
    answer: Sequence[str] | None = None,
    *,
    reward_correct: float = 1.0,
    reward_incorrect: float = -1.0,
    timeout_s: float = 5.0,
    **_: object,
) -> list[float]:
    """Eq. 2 over a batch: `answer` is the gold column, aligned with `completions`. The boxed final answer
    (srlm.grading.boxed_answer) is verified: a bare `<answer>N</answer>` earns nothing, since the evaluation's
    paper protocol would not read it either."""
    if answer is None:
        raise ValueError("accuracy_reward needs the gold answers: the dataset must have an 'answer' column")
    if len(answer) != len(completions):
        raise ValueError(f"accuracy_reward got {len(completions)} completions but {len(answer)} answers")
    rewards = []
    for completion, gold in zip(completions, answer, strict=True):
        extracted = boxed_answer(completion_text(completion))
        ok = extracted is not None and verify(extracted, str(gold), timeout_s)
        rewards.append(reward_correct if ok else reward_incorrect)
    return rewards


def _named(func: Callable, **bound: float) -> Callable[..., list[float]]:
    reward = functools.partial(func, **bound)
    # TRL's get_callable_name unwraps partials itself; other loggers read __name__.
    reward.__name__ = func.__name__
    return reward


def make_format_reward(correct: float = 1.0, incorrect: float = -1.0) -> Callable[..., list[float]]:
    """Format reward (eq. 1): `correct` for a well-formed completion, else `incorrect`."""
    return _named(format_reward, reward_correct=correct, reward_incorrect=incorrect)


def make_accuracy_reward(
    correct: float = 1.0, incorrect: float = -1.0, timeout_s: float = 5.0
) -> Callable[..., list[float]]:
    """Accuracy reward (eq. 2): `correct` if the extracted answer verifies against the `answer` column."""
    return _named(accuracy_reward, reward_correct=correct, reward_incorrect=incorrect, timeout_s=timeout_s)
