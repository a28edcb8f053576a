"""SFT and KD stages (KD is SFT on the teacher's traces): TRL SFTTrainer, optionally LoRA (PEFT), then merged.

Data rows are conversational prompt/completion pairs, so the loss is on the completion only, and each model's own
chat template renders them. The base model's EOS is set to <|im_end|> (config models.<m>.eos_token) so that a
fine-tuned base model ends its turn.
"""

from __future__ import annotations

import srlm.speed
from srlm.data.io import cli
from srlm.train import arguments, job, records, speed


@cli
def main(argv=None) -> None:
    args = job.parse_args(argv, __doc__.splitlines()[0])
    stage, p = args.params["stage"], args.params
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype="auto")
    data = load_dataset("json", data_files=args.data, split="train")
    kwargs = dict(
        **arguments.common_args(stage, args.work_dir, p["mixed_precision"]),
        max_length=stage["max_length"],
        eos_token=p["model"]["eos_token"],
        completion_only_loss=True,
        packing=False,
        # Plain cross-entropy (TRL also offers "dft", and its default was None in 1.9).
        loss_type="nll",
        # A row longer than max_length keeps its start (srlm.data's prep report counts such rows).
        truncation_mode="keep_start",
        # The loss is the mean over every completion token of the global batch, however it is split across GPUs
        # and accumulation steps (srlm.train.speed keeps the global batch on any GPU count).
        average_tokens_across_devices=True,
    )
    # The libraries' speed switches (batch split keeping the global batch, liger, no checkpointing): perf/bench.py.
    node_gpus = p["node_gpus"]
    compiled = arguments.compiles(p)
    kwargs.update(
        speed.sft_speed_args(stage, arguments.world_size(), arguments.has_cuda(), node_gpus=node_gpus, compiled=compiled)
    )
    srlm.speed.attention_backends()
    trainer = make_trainer(
        model, kwargs, stage["max_length"], train_dataset=data, processing_class=tokenizer,
        peft_config=arguments.lora_config(stage["lora"]), compiled=compiled,
    )  # fmt: skip
    settings = {
        **records.used_settings(trainer, kwargs),
        "compiled_layers": trainer.compiled_layers,
        # What ran: srlm.speed takes transformers' dense-mask SDPA where it is not proven on the installed libraries.
        "packed_attention": trainer.packed_attention,
    }
    job.run(trainer, args, "sft", settings)


def make_trainer(
    model, kwargs: dict, max_length: int, attention: str | None = None, compiled: bool = False, **trainer_kwargs
):
    """SFTTrainer(model, SFTConfig(**kwargs), **trainer_kwargs), padding-free when kwargs say so: one flattened
    row per micro-batch, the model attending within each sequence through srlm.speed.packed (`attention`: its
    kernel, None = by device; "sdpa" = transformers' own with a dense mask, for comparison and where srlm.speed is
    not proven; the trainer's `packed_attention` says whether srlm.speed.packed attends), and the rows cut to
    max_length, which TRL enforces only on padded rows; `compiled`: its decoder layers compiled
    (srlm.speed.compile_layers; the trainer's `compiled_layers` says how many). The job, perf/bench.py and the
    tests all build it here."""
    from trl import SFTConfig, SFTTrainer

    padding_free = kwargs.get("padding_free")
    packed = bool(padding_free) and attention != "sdpa" and srlm.speed.use_packed(model, attention)
    trainer = SFTTrainer(model=model, args=SFTConfig(**kwargs), **trainer_kwargs)
    trainer.packed_attention = packed
    if padding_free:
        trainer.train_dataset = speed.truncate_rows(trainer.train_dataset, max_length)
    trainer.compiled_layers = srlm.speed.compile_layers(trainer.model) if compiled else 0
    return trainer


if __name__ == "__main__":
    main()
