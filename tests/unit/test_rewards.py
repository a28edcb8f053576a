"""The paper's GRPO rewards (format, accuracy) as TRL calls them."""

import pickle

import pytest

from srlm.rewards import completion_text, format_ok, make_accuracy_reward, make_format_reward

GOOD = "<think>6 * 12 = 72</think>\n<answer>\\boxed{72}</answer>"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        (GOOD, True),
        ("<think>a</think><answer>\\boxed{72}</answer>", True),
        ("  \n<think>a</think>\n\n<answer> \\boxed{72} </answer>\n", True),  # whitespace only around the blocks
        ("<think></think><answer>\\boxed{72}</answer>", True),  # the paper constrains the answer, not the reasoning
        ("<answer>\\boxed{72}</answer>", False),  # no think block
        ("<think>a</think>", False),  # no answer block
        ("<think>a</think><answer>72</answer>", False),  # a bare answer: the paper protocol cannot read it
        ("<think>a</think><answer>The answer is \\boxed{72}.</answer>", True),  # words around the box
        ("<think>a</think><answer>\\boxed{}</answer>", False),  # empty box
        ("<think>a</think><answer>\\boxed{72</answer>", False),  # unbalanced box
        ("<think>a</think><answer></answer>", False),  # empty answer
        ("<think>a</think><answer>  \n </answer>", False),
        ("<answer>\\boxed{72}</answer><think>a</think>", False),  # wrong order
        ("Sure! <think>a</think><answer>\\boxed{72}</answer>", False),  # text before <think>
        ("<think>a</think> so <answer>\\boxed{72}</answer>", False),  # text between the blocks
        ("<think>a</think><answer>\\boxed{72}</answer> Hope this helps.", False),  # text after </answer>
        ("<think>a</think><answer>\\boxed{72}</answer><answer>\\boxed{72}</answer>", False),  # doubled answer
        ("<think>a</think><think>b</think><answer>\\boxed{72}</answer>", False),  # doubled think
        ("<think>a <think>b</think><answer>\\boxed{72}</answer>", False),  # stray opening tag
        ("<think>a</think><answer>\\boxed{7}</answer>2</answer>", False),  # stray closing tag
        ("<think>a<answer>\\boxed{1}</answer></think><answer>\\boxed{72}</answer>", False),  # answer tags inside think
        ("<think>a</think><answer>72", False),  # cut off
        ("<THINK>a</THINK><ANSWER>72</ANSWER>", False),  # tags are case-sensitive
    ],
)
def test_format_ok(text, ok):
    assert format_ok(text) is ok


def test_completion_text_string_and_conversational():
    assert completion_text(GOOD) == GOOD
    assert completion_text([{"role": "assistant", "content": GOOD}]) == GOOD
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": GOOD}]}]) == GOOD
    tool = [
        {"role": "assistant", "content": "<think>a"},
        {"role": "tool", "content": "x"},
        {"role": "assistant", "content": "</think>"},
    ]
    assert completion_text(tool) == "<think>a</think>"
    with pytest.raises(TypeError, match="message dicts"):
        completion_text(["not a message"])


def test_format_reward_values_and_name():
    reward = make_format_reward()
    assert reward.__name__ == "format_reward"
    completions = [GOOD, "<answer>72</answer>", "<think>a</think><answer>72</answer> extra"]
    assert reward(completions=completions, answer=["72"] * 3) == [1.0, -1.0, -1.0]
    assert make_format_reward(correct=0.5, incorrect=0.0)(completions) == [0.5, 0.0, 0.0]


def test_accuracy_reward_values_and_name():
    reward = make_accuracy_reward()
    assert reward.__name__ == "accuracy_reward"
    completions = [
        GOOD,  # right
        "<think>a</think><answer>\\boxed{70}</answer>",  # wrong
        "<think>a</think>\\boxed{72}",  # no tags: the last box still counts for accuracy (format says no)
        "<think>a</think><answer>72</answer>",  # right but bare: the paper protocol would not read it
        "<think>a</think><answer></answer>",  # empty answer
        "The answer is 72",  # nothing extractable
        "<answer>\\boxed{72}</answer><answer>\\boxed{73}</answer>",  # doubled tags: the last span is the answer
        "<think>\\boxed{72}</think><answer>\\boxed{73}</answer>",  # the answer span's box, not the reasoning's
        "<think>x</think><answer>\\boxed{1,600}</answer>",  # right, with a thousands separator
    ]
    golds = ["72", "72", "72", "72", "72", "72", "72", "72", "1600"]
    assert reward(completions, answer=golds) == [1.0, -1.0, 1.0, -1.0, -1.0, -1.0, -1.0, -1.0, 1.0]


def test_accuracy_and_format_are_independent():
    """A right answer in a broken format earns accuracy but not format, and vice versa."""
    fmt, acc = make_format_reward(), make_accuracy_reward()
    completions = ["Thinking... <answer>\\boxed{72}</answer>", "<think>a</think><answer>\\boxed{71}</answer>"]
    assert fmt(completions) == [-1.0, 1.0]
    assert acc(completions, answer=["72", "72"]) == [1.0, -1.0]


def test_accuracy_reward_conversational_and_trl_kwargs():
    """TRL passes prompts, completion_ids, other dataset columns and trainer hooks as keyword arguments."""
    reward = make_accuracy_reward(correct=2.0, incorrect=-0.5, timeout_s=2.0)
    completions = [
        [{"role": "assistant", "content": GOOD}],
        [{"role": "assistant", "content": "<answer>\\boxed{7}</answer>"}],
    ]
    out = reward(
        prompts=[[{"role": "user", "content": "q"}]] * 2,
        completions=completions,
        completion_ids=[[1], [2]],
        answer=["72", "72"],
        id=["a", "b"],
        trainer_state=None,
        log_extra=print,
        log_metric=print,
    )
    assert out == [2.0, -0.5]


def test_accuracy_reward_needs_aligned_answers():
    reward = make_accuracy_reward()
    with pytest.raises(ValueError, match="'answer' column"):
        reward([GOOD])
    with pytest.raises(ValueError, match="1 completions but 2 answers"):
        reward([GOOD], answer=["72", "72"])


def test_rewards_pickle():
    """TRL's async GRPO worker ships reward functions to a spawned process; closures would not pickle."""
    for reward in (make_format_reward(0.5, -0.5), make_accuracy_reward(1.0, 0.0)):
        clone = pickle.loads(pickle.dumps(reward))
        assert clone.__name__ == reward.__name__
        assert clone([GOOD, "<answer>1</answer>"], answer=["72", "72"]) == reward(
            [GOOD, "<answer>1</answer>"], answer=["72", "72"]
        )
