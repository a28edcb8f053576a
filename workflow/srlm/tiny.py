"""The tiny Qwen2-architecture model of the demo and the tests.

No hub is reachable here, so the pipeline builds its own stand-in for Qwen2.5-0.5B: a byte-level BPE tokenizer
trained locally (tokenizers) on the synthetic problems, with Qwen's special tokens and ChatML chat template, and a
randomly initialised `Qwen2ForCausalLM` of a few hundred thousand parameters. The output folder looks like a hub
download (config, weights, tokenizer, generation config), so every later stage loads it the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# Qwen2.5's ChatML template, reduced to the roles the pipeline uses (no tools).
CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Tags of the paper's output format, single tokens so a tiny model learns them in a few steps.
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]


def train_tokenizer(corpus: Iterable[str], vocab_size: int):
    """Byte-level BPE (as Qwen's) trained on `corpus`, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.add_tokens(TAG_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.padding_side = "left"
    return fast


def build_tiny(out_dir: str | Path, spec: dict, corpus: Iterable[str], seed: int = 0, instruct: bool = False) -> Path:
    """Build and save a tiny Qwen2 model + tokenizer in `out_dir`.

    `spec` is config `tiny_model`. `instruct` mirrors the real pair: the instruct model ends its turns with
    <|im_end|>, the base model with <|endoftext|>.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    tokenizer = train_tokenizer(corpus, spec["vocab_size"])
    if instruct:
        tokenizer.eos_token = "<|im_end|>"
    eos_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec["hidden_size"],
        intermediate_size=spec["intermediate_size"],
        num_hidden_layers=spec["num_hidden_layers"],
        num_attention_heads=spec["num_attention_heads"],
        num_key_value_heads=spec["num_key_value_heads"],
        max_position_embeddings=spec["max_position_embeddings"],
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    torch.manual_seed(spec["seed"] + seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id, do_sample=False)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def default_corpus(system_prompt: str, n: int = 400, seed: int = 0) -> list[str]:
    """Text the tiny tokenizer is trained on: synthetic problems, solutions and the prompt, in chat form."""
    from srlm.data import synthetic

    from srlm.data.gsm8k import cot_completion
    from srlm.prompts import PAPER_QUERY

    # Weighted so BPE merges them: short prompts keep tiny sequences short. The paper protocol's query template
    # is what evaluation asks (srlm.prompts), the system prompt what training data carries.
    texts = [system_prompt] * 50 + [PAPER_QUERY.format(Question="")] * 50
    for row in synthetic.gsm8k_rows(n, seed):
        texts += [row["question"], cot_completion(row["answer"])]
    return texts
