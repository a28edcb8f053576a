"""RL stage: TRL GRPOTrainer with the paper's two rewards (format ±1, accuracy ±1, §3.3).

Every TRL default that changed across versions (beta, loss_type, scale_rewards, max_completion_length,
temperature, vllm_mode) comes from the stage config, and the values used land in train_summary.json.
Where vLLM is not installed (CPU, our test GPUs) generation falls back to transformers, and the summary says so.
"""

from __future__ import annotations

import importlib.util

from srlm import rewards
from srlm.train import common


def main(argv=None) -> None:
    args = common.parse_args(argv, __doc__.splitlines()[0])
    stage, p = args.params["stage"], args.params
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    use_vllm = stage["use_vllm"] and importlib.util.find_spec("vllm") is not None
    if stage["use_vllm"] and not use_vllm:
        print("vllm is not installed: GRPO generates with transformers", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype="auto")
    data = load_dataset("json", data_files=args.data, split="train")
    settings = dict(
        **common.common_args(stage, args.work_dir, p["mixed_precision"]),
        num_generations=stage["num_generations"],
        max_completion_length=stage["max_completion_length"],
        beta=stage["beta"],
        loss_type=stage["loss_type"],
        scale_rewards=stage["scale_rewards"],
        temperature=stage["temperature"],
        use_vllm=use_vllm,
        vllm_mode=stage["vllm_mode"],
    )
    rw = stage["rewards"]
    trainer = GRPOTrainer(
        model=model,
        args=GRPOConfig(**settings),
        train_dataset=data,
        processing_class=tokenizer,
        reward_funcs=[rewards.make_format_reward(**rw["format"]), rewards.make_accuracy_reward(**rw["accuracy"])],
        peft_config=common.lora_config(stage["lora"]),
    )
    settings.update(lora=stage["lora"], rewards=rw, vllm_requested=stage["use_vllm"])
    health = {"reward_minimum": {k: v["incorrect"] for k, v in rw.items()}, **p.get("health", {})}
    common.run(trainer, args, stage, "grpo", settings, health)


if __name__ == "__main__":
    main()
