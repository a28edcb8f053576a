"""SFT and KD stages (KD is SFT on the teacher's traces): TRL SFTTrainer, optionally LoRA (PEFT), then merged.

Data rows are conversational prompt/completion pairs, so the loss is on the completion only, and each model's own
chat template renders them. The base model's EOS is set to <|im_end|> (config models.<m>.eos_token) so that a
fine-tuned base model ends its turn.
"""

from __future__ import annotations

from srlm.train import common, packed, speed


def main(argv=None) -> None:
    args = common.parse_args(argv, __doc__.splitlines()[0])
    stage, p = args.params["stage"], args.params
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype="auto")
    data = load_dataset("json", data_files=args.data, split="train")
    kwargs = dict(
        **common.common_args(stage, args.work_dir, p["mixed_precision"]),
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
    node_gpus = p.get("node_gpus", speed.PAPER_GPUS)
    kwargs.update(speed.sft_speed_args(stage, common.world_size(), common.has_cuda(), node_gpus=node_gpus))
    speed.attention_backends()
    if kwargs.get("padding_free"):  # one flattened row per micro-batch: attention within each sequence only
        packed.use(model)
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**kwargs),
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=common.lora_config(stage["lora"]),
    )
    # TRL truncates only padded rows; the stage's max_length holds all the same.
    if kwargs.get("padding_free"):
        trainer.train_dataset = speed.truncate_rows(trainer.train_dataset, stage["max_length"])
    common.run(trainer, args, "sft", common.used_settings(trainer, kwargs))


if __name__ == "__main__":
    main()
