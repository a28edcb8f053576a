"""The evaluation protocols: what a model is asked, and how its answers are graded (config `evaluation.protocol`).

- "paper": the harness of the paper's reference [7] (Open-RS, an open-r1 fork; ../shared/notes/paper-eval-harness.md):
  no system prompt; the user turn is open-r1's MATH query template around the problem, rendered with the model's
  chat template (lighteval's `--use-chat-template`); graded by lighteval's extractive match (math-verify's parse and
  verify: gold as LaTeX, prediction as an expression or LaTeX, boxed first, first-match fallback, precision 5).
- "r1": the R1-style system prompt of `prompt.system` (the one the SFT data and the GRPO format reward teach) and
  the raw problem as the user turn; graded on the `<answer>…</answer>` span (srlm.grading).
Used by the generation job, the grading job and the lighteval task module alike, so the three cannot drift.
"""

from __future__ import annotations

PROTOCOLS = ("paper", "r1")

# open-r1's MATH_QUERY_TEMPLATE (src/open_r1/evaluate.py before its commit #584), as Open-RS evaluates with it.
PAPER_QUERY = (
    "Solve the following math problem efficiently and clearly.  The last line of your response should be of the "
    "following format: 'Therefore, the final answer is: $\\boxed{{ANSWER}}$. I hope it is correct' (without quotes) "
    "where ANSWER is just the final number or expression that solves the problem. Think step by step before "
    "answering.\n\n{Question}"
)


def check(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"evaluation.protocol must be one of {list(PROTOCOLS)}, got {protocol!r}")
    return protocol


def query(problem: str, protocol: str) -> str:
    """The user turn for one problem."""
    return PAPER_QUERY.format(Question=problem) if check(protocol) == "paper" else problem


def system_prompt(protocol: str, r1_system: str) -> str | None:
    return r1_system or None if check(protocol) == "r1" else None


def messages(problem: str, protocol: str, r1_system: str = "") -> list[dict]:
    system = system_prompt(protocol, r1_system)
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": query(problem, protocol)}]


def render(tokenizer, msgs: list[dict], *, chat_template: bool = True, enable_thinking: bool | None = None) -> str:
    """The text the model continues: the chat template with the generation prompt, or (chat_template false) the
    turns' contents joined by blank lines, as lighteval's plain-text prompts are."""
    if not chat_template:
        return "\n\n".join(m["content"] for m in msgs)
    kwargs = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, **kwargs)
