"""models.<m>.eos_token ends evaluation samples and GRPO rollouts too, not only SFT targets (issue 31).

A base model's own EOS (<|endoftext|>) never closes a ChatML turn: a sample that writes `</answer><|im_end|>` must
stop there, not run on to the length limit."""

import pytest
import torch
import yaml

from srlm import generation
from srlm.generation.hf import TransformersEngine, eos_ids, token_id
from srlm.tiny import build_tiny, default_corpus
from srlm.train.grpo import end_turn_at
from tests.conftest import REPO

SPEC = yaml.safe_load((REPO / "config.yaml").read_text())["tiny_model"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny *base* model: tokenizer and generation config name only <|endoftext|> as EOS."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = build_tiny(tmp_path_factory.mktemp("base") / "m", SPEC, default_corpus("S", n=40), instruct=False)
    return AutoModelForCausalLM.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out), out


def test_the_base_model_alone_does_not_end_its_turn(base):
    model, tok, _ = base
    end = tok.convert_tokens_to_ids("<|im_end|>")
    assert end not in eos_ids(model, tok)
    assert end in eos_ids(model, tok, "<|im_end|>")
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        token_id(tok, "<|no_such_token|>")


def test_grpo_rollouts_stop_at_the_end_of_turn(base):
    """TRL reads generation_config.eos_token_id for stopping and masking rollouts; end_turn_at adds the turn's end
    once, keeping the model's own EOS."""
    model, tok, _ = base
    own = model.generation_config.eos_token_id
    end_turn_at(model, tok, "<|im_end|>")
    end_turn_at(model, tok, "<|im_end|>")
    assert model.generation_config.eos_token_id == [own, tok.convert_tokens_to_ids("<|im_end|>")]


@pytest.mark.parametrize("engine", ["srlm.decode", "transformers"])
def test_evaluation_samples_stop_at_the_end_of_turn(base, engine):
    """A head that always writes <|im_end|>: with end_of_turn the sample is that one token, finish reason "stop";
    with the base model's own EOS only, it writes <|im_end|> to the length limit."""
    from transformers import AutoModelForCausalLM

    _, tok, path = base
    end = tok.convert_tokens_to_ids("<|im_end|>")
    prompt = [tok("What is 2 + 3?", add_special_tokens=False)["input_ids"]]
    sampling = generation.Sampling(temperature=0.0, max_new_tokens=12, n=1)

    def sample(end_of_turn):
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
            head.bias[end] = 10.0
        model.lm_head = head
        eng = TransformersEngine(model, tok, engine, eos_ids=eos_ids(model, tok, end_of_turn), max_model_length=128,
                                 batch_size=4)  # fmt: skip
        return eng.generate(prompt, sampling)[0][0]

    stopped, ran_on = sample("<|im_end|>"), sample(None)
    assert (stopped.token_ids, stopped.finish_reason) == ([end], "stop")
    assert (ran_on.token_ids, ran_on.finish_reason) == ([end] * 12, "length")
