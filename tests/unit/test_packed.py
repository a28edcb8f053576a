"""srlm.speed.packed: padding-free batches give the losses and gradients of padded ones, and no sequence of a
flattened batch sees its neighbours.

Batches are built by TRL's own collator (padded, and padding_free=True: one row, position_ids restarting per
sequence, cu_seq_lens), fed to a tiny Qwen2 model (and a Llama one: SmolLM2, config/smollm2.yaml) in float32; rows of different lengths,
one of length 1.
"""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from srlm.speed import packed
from srlm.train import sft, speed

VOCAB, PAD = 300, 0
LENGTHS = (9, 1, 17, 4, 12)


ARCHS = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}


def _model(arch: str = "qwen2"):
    torch.manual_seed(0)
    config_class, model_class = ARCHS[arch]
    config = config_class(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                          tie_word_embeddings=True)  # fmt: skip
    return model_class(config)


def _rows(lengths=LENGTHS, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, VOCAB, (n,), generator=g).tolist() for n in lengths]


def _batches(rows):
    examples = [{"input_ids": r} for r in rows]
    padded = DataCollatorForLanguageModeling(pad_token_id=PAD)(examples)
    flat = DataCollatorForLanguageModeling(pad_token_id=PAD, padding_free=True)(examples)
    return padded, {k: v for k, v in flat.items() if k != "labels"}


def _token_nll(logits_per_row, rows):
    """Per-token NLL of every next-token prediction, concatenated over the rows."""
    out = []
    for logits, ids in zip(logits_per_row, rows):
        target = torch.tensor(ids[1:], dtype=torch.long)
        out.append(torch.nn.functional.cross_entropy(logits[: len(ids) - 1], target, reduction="none"))
    return torch.cat(out)


def _padded_nll(model, padded, rows):
    model.set_attn_implementation("sdpa")
    logits = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
    return _token_nll(list(logits), rows)


def _packed_nll(model, flat, rows, backend):
    packed.use(model, backend)
    logits = model(**flat).logits[0].split([len(r) for r in rows])
    return _token_nll(logits, rows)


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_losses_and_gradients_equal_padded_batch(arch):
    rows = _rows()
    padded, flat = _batches(rows)
    assert padded["input_ids"].numel() > flat["input_ids"].numel() == sum(LENGTHS)
    model = _model(arch)

    ref = _padded_nll(model, padded, rows)
    ref.sum().backward()
    ref_grads = _grads(model)
    model.zero_grad()

    nll = _packed_nll(model, flat, rows, "segments")
    nll.sum().backward()
    assert nll.shape == ref.shape == (sum(LENGTHS) - len(LENGTHS),)
    torch.testing.assert_close(nll, ref, rtol=1e-5, atol=1e-5)
    for name, g in _grads(model).items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-5, msg=name)
    assert max(g.abs().max() for g in ref_grads.values()) > 1e-3  # the gradients compared are not all zero


@pytest.mark.parametrize("backend", ["segments", "flex"])
def test_forward_equals_padded_batch(backend):
    rows = _rows()
    padded, flat = _batches(rows)
    model = _model().eval()
    with torch.no_grad():  # flex attention has no backward on CPU
        torch.testing.assert_close(
            _packed_nll(model, flat, rows, backend), _padded_nll(model, padded, rows), rtol=1e-5, atol=1e-5
        )


def _grpo_batch(prompts, completions):
    """A batch as TRL's GRPO trainer builds it: prompts left-padded, completions right-padded, one mask."""
    width_p, width_c = max(map(len, prompts)), max(map(len, completions))
    ids = torch.full((len(prompts), width_p + width_c), PAD)
    mask = torch.zeros_like(ids)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ids[i, width_p - len(p) : width_p + len(c)] = torch.tensor(p + c)
        mask[i, width_p - len(p) : width_p + len(c)] = 1
    return ids, mask


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_shifted_attention_equals_padded_sdpa(arch):
    """GRPO's padded rows (rl stage key maskless_attention): each row moved to its start and attended without a
    mask gives, at every token, transformers' SDPA logits under the padding mask, and the same gradients of a
    loss over the tokens; rows without padding, and a forward with a KV cache, go through unchanged."""
    prompts, completions = _rows((5, 9, 2, 9), seed=3), _rows((7, 1, 11, 3), seed=4)
    ids, mask = _grpo_batch(prompts, completions)
    assert not mask.all(dim=1).any() and mask[1].all() == 0 and mask[:, 0].sum() == 2  # left and right padding
    model = _model(arch)
    model.set_attn_implementation("sdpa")
    ref = model(input_ids=ids, attention_mask=mask).logits
    (ref * mask[..., None]).sum().backward()
    ref_grads = _grads(model)
    model.zero_grad()
    full = torch.ones_like(ids)
    left, left_mask = _grpo_batch([p + c for p, c in zip(prompts, completions)], [[]] * len(prompts))
    greedy = dict(max_new_tokens=6, do_sample=False, pad_token_id=PAD)
    with torch.no_grad():
        ref_full = model(input_ids=ids, attention_mask=full).logits
        ref_generated = model.generate(input_ids=left, attention_mask=left_mask, **greedy)

    packed.use_shifted(model)
    assert model.config._attn_implementation == packed.SHIFTED
    out = model(input_ids=ids, attention_mask=mask).logits
    (out * mask[..., None]).sum().backward()
    real = mask.bool()
    torch.testing.assert_close(out[real], ref[real], rtol=1e-5, atol=1e-5)
    assert (out[~real] - ref[~real]).abs().max() > 1e-3  # padding positions differ: the rows did move
    for name, g in _grads(model).items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-5, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids, attention_mask=full).logits, ref_full, rtol=1e-5, atol=1e-5)
        assert torch.equal(model.generate(input_ids=left, attention_mask=left_mask, **greedy), ref_generated)


def test_a_sequence_does_not_see_its_neighbours():
    rows = _rows()
    changed = [r[:] for r in rows]
    changed[2] = _rows((LENGTHS[2],), seed=7)[0]  # the middle sequence, between shorter ones
    model = _model().eval()
    spans = torch.tensor(LENGTHS).cumsum(0).tolist()
    others = torch.ones(sum(LENGTHS), dtype=torch.bool)
    others[spans[1] : spans[2]] = False

    def logits(rs, attn):
        model.set_attn_implementation(attn)
        with torch.no_grad():
            return model(**_batches(rs)[1]).logits[0]

    packed.register("segments")
    before, after = logits(rows, packed.ATTENTION), logits(changed, packed.ATTENTION)
    assert not torch.allclose(before[~others], after[~others])
    torch.testing.assert_close(after[others], before[others], rtol=0, atol=1e-6)
    # The check can fail: one causal attention over the whole flattened row (no position_ids, no cu_seq_lens)
    # lets the sequences after the changed one see it.
    model.set_attn_implementation("sdpa")
    with torch.no_grad():
        leak_before = model(input_ids=_batches(rows)[1]["input_ids"]).logits[0]
        leak_after = model(input_ids=_batches(changed)[1]["input_ids"]).logits[0]
    assert not torch.allclose(leak_before[spans[2] :], leak_after[spans[2] :], atol=1e-3)


def test_segments_from_position_ids_match_the_collators():
    rows = _rows()
    _, flat = _batches(rows)
    query = torch.zeros(1, 4, flat["input_ids"].shape[1], 16)
    cu, longest = packed._segments(query, {"position_ids": flat["position_ids"]})
    assert cu.tolist() == flat["cu_seq_lens_q"].tolist() and longest == flat["max_length_q"] == max(LENGTHS)


def test_padded_inputs_and_generation_are_transformers_sdpa():
    """A model switched to the packed attention computes what "sdpa" computes on padded batches and with a
    KV cache (generation), so evaluation after training is unchanged whichever name the config holds."""
    rows = _rows()
    padded, _ = _batches(rows)
    model = _model().eval()
    with torch.no_grad():
        model.set_attn_implementation("sdpa")
        ref = model(**padded).logits
        prompt = torch.tensor([rows[2]])
        ref_gen = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=PAD)
        packed.use(model, "segments")
        torch.testing.assert_close(model(**padded).logits, ref, rtol=0, atol=0)
        assert (
            model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=PAD).tolist()
            == ref_gen.tolist()
        )


def test_trainer_losses_equal_padded_run(tmp_path):
    """A few SFTTrainer steps as srlm.train.sft takes them (padding_free, packed attention, truncate_rows) give the
    losses of the padded run."""
    from datasets import Dataset
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(WordLevel({f"t{i}": i for i in range(VOCAB)}, unk_token="t1"))
    tok = PreTrainedTokenizerFast(tokenizer_object=words, pad_token=f"t{PAD}", eos_token="t2")
    rows = _rows((9, 1, 17, 4, 12, 30, 2, 7, 21, 5, 16, 3), seed=3)

    def losses(padding_free: bool) -> list[float]:
        model = _model()
        args = dict(
            output_dir=str(tmp_path / str(padding_free)), max_steps=3, learning_rate=1e-2, logging_steps=1,
            lr_scheduler_type="constant", save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True,
            bf16=False, seed=0, per_device_train_batch_size=4, completion_only_loss=False,
            padding_free=padding_free, max_length=None if padding_free else 20,
        )  # fmt: skip
        trainer = sft.make_trainer(model, args, 20, "segments", processing_class=tok,
                                   train_dataset=Dataset.from_dict({"input_ids": rows}))  # fmt: skip
        trainer.train()
        return [r["loss"] for r in trainer.state.log_history if "loss" in r]

    padded, flat = losses(False), losses(True)
    assert len(padded) == 3 and len(set(padded)) == 3
    assert flat == pytest.approx(padded, rel=1e-6, abs=1e-6)


def test_truncate_rows_is_trls_truncation():
    from datasets import Dataset

    data = Dataset.from_dict({
        "input_ids": [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10, 11]],
        "labels": [[-100, 2, 3, 4, 5], [-100, 7], [-100, -100, -100, 11]],
    })  # fmt: skip
    out = speed.truncate_rows(data, 3)
    assert out["input_ids"] == [[1, 2, 3], [6, 7]]  # the third row keeps no trained token: dropped
    assert out["labels"] == [[-100, 2, 3], [-100, 7]]


@pytest.mark.skipif(
    not (torch.cuda.is_available() and packed.has_varlen()), reason="needs CUDA and varlen_attn"
)
def test_varlen_equals_segments_on_gpu():
    rows = _rows((300, 1, 517, 64, 129))
    _, flat = _batches(rows)
    flat = {k: v.cuda() if torch.is_tensor(v) else v for k, v in flat.items()}
    model = _model().cuda().to(torch.bfloat16)
    out = {}
    for backend in ("segments", "varlen"):
        packed.use(model, backend)
        model.zero_grad()
        logits = model(**flat).logits.float()
        logits.logsumexp(-1).sum().backward()
        out[backend] = logits, _grads(model)
    torch.testing.assert_close(out["varlen"][0], out["segments"][0], rtol=2e-2, atol=2e-2)
    for name, g in out["varlen"][1].items():
        torch.testing.assert_close(
            g.float(), out["segments"][1][name].float(), rtol=5e-2, atol=5e-2, msg=name
        )
