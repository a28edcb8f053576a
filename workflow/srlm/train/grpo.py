"""RL stage: TRL GRPOTrainer with the paper's two rewards (format ±1, accuracy ±1, §3.3).

Every TRL default that changed across versions (beta, loss_type, scale_rewards, max_completion_length,
temperature, vllm_mode) comes from the stage config, and the values the trainer used land in train_summary.json.
Where vLLM is not installed (CPU, our test GPUs) generation falls back to transformers, and the summary says so.
"""

from __future__ import annotations

import importlib.util

from srlm import rewards
from srlm.train import common, speed


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
    kwargs = dict(
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
    # One rollout of the whole global batch per optimizer step, in the largest micro-batches (perf/bench.py).
    node_gpus = p.get("node_gpus", speed.PAPER_GPUS)
    kwargs.update(speed.grpo_speed_args(stage, common.world_size(), common.has_cuda(), node_gpus=node_gpus))
    speed.attention_backends()
    rw = stage["rewards"]
    funcs = {
        "format": rewards.make_format_reward(**rw["format"]),
        "accuracy": rewards.make_accuracy_reward(**rw["accuracy"]),
    }
    trainer = GRPOTrainer(
        model=model,
        args=GRPOConfig(**kwargs),
        train_dataset=data,
        processing_class=tokenizer,
        reward_funcs=list(funcs.values()),
        peft_config=common.lora_config(stage["lora"]),
    )
    settings = {**common.used_settings(trainer, kwargs), "rewards": rw, "vllm_requested": stage["use_vllm"]}
    # TRL logs each reward's batch mean as rewards/<function name>/mean.
    reward_logs = {f"rewards/{f.__name__}/mean": rw[name] for name, f in funcs.items()}
    common.run(trainer, args, "grpo", settings, reward_logs)


if __name__ == "__main__":
    main()
