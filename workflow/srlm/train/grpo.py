"""RL stage: TRL GRPOTrainer with the paper's two rewards (format ±1, accuracy ±1, §3.3).

Every TRL default that changed across versions (beta, loss_type, scale_rewards, max_completion_length,
temperature, vllm_mode) comes from the stage config, and the values the trainer used land in train_summary.json.
Where vLLM is not installed (CPU, our test GPUs) the rollouts are sampled by `srlm.decode` (the same transformers
model with a static KV cache and CUDA graphs, 6-10x TRL's `model.generate` on an H100: docs/performance.md), or by
TRL's own `model.generate` for settings it does not implement; the summary says which.
"""

from __future__ import annotations

import importlib.util

from srlm import decode, rewards
from srlm.train import common, speed


def trainer_class():
    """TRL's GRPOTrainer, with transformers-side rollouts sampled by srlm.decode where it applies."""
    import torch
    from trl import GRPOTrainer
    from trl.models import unwrap_model_for_generation

    class Trainer(GRPOTrainer):
        def generation_engine(self) -> str:
            if self.use_vllm:
                return "vllm"
            if self.use_transformers_continuous_batching or self.args.generation_kwargs:
                return "transformers generate"
            why = decode.supported(self.model, repetition_penalty=self.repetition_penalty, min_p=self.min_p)
            return "transformers generate" if why else "srlm.decode"

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, **kwargs):
            if images is not None or multimodal_fields or self.generation_engine() != "srlm.decode":
                return super()._generate_single_turn(
                    prompt_ids, images, multimodal_fields, num_generations, **kwargs
                )
            with (
                unwrap_model_for_generation(
                    self.model_wrapped,
                    self.accelerator,
                    gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                    gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
                ) as model,
                torch.no_grad(),
                self._dist.summon_full_params(self.model_wrapped, recurse=False),
            ):
                completions = decode.generate(
                    model,
                    prompt_ids,
                    self.max_completion_length,
                    eos_ids=self.eos_token_ids,
                    pad_id=self._tokenizer.pad_token_id,
                    sampling=decode.Sampling(self.temperature, self.top_p, self.top_k or 0),
                )
            return completions, None

    return Trainer


def vllm_choice(stage: dict) -> bool:
    """Whether TRL generates with vLLM: use_vllm where vLLM is installed; without it an error, unless the
    stage's vllm_fallback allows transformers generation (the summary's generation_engine says which ran)."""
    if not stage["use_vllm"]:
        return False
    if importlib.util.find_spec("vllm") is not None:
        return True
    if not stage.get("vllm_fallback", False):
        raise RuntimeError(
            "use_vllm is true but vllm is not installed in this environment: build the cluster environment "
            "(envs/train.yaml, docs/vllm.md), or set the stage's use_vllm: false, or vllm_fallback: true to "
            "generate with transformers instead"
        )
    print("vllm is not installed: GRPO generates with transformers (vllm_fallback: true)", flush=True)
    return False


def main(argv=None) -> None:
    args = common.parse_args(argv, __doc__.splitlines()[0])
    stage, p = args.params["stage"], args.params
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    use_vllm = vllm_choice(stage)
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
    if use_vllm and not common.has_cuda():  # vLLM's CPU build (tests): TRL's 0.9 would be 90% of the node's RAM
        from srlm.generation.vllm import CPU_MEMORY_SHARE

        kwargs["vllm_gpu_memory_utilization"] = CPU_MEMORY_SHARE
    # One rollout of the whole global batch per optimizer step, in the largest micro-batches (perf/bench.py).
    node_gpus = p.get("node_gpus", speed.PAPER_GPUS)
    kwargs.update(speed.grpo_speed_args(stage, common.world_size(), common.has_cuda(), node_gpus=node_gpus))
    speed.attention_backends()
    rw = stage["rewards"]
    funcs = {
        "format": rewards.make_format_reward(**rw["format"]),
        "accuracy": rewards.make_accuracy_reward(**rw["accuracy"]),
    }
    trainer = trainer_class()(
        model=model,
        args=GRPOConfig(**kwargs),
        train_dataset=data,
        processing_class=tokenizer,
        reward_funcs=list(funcs.values()),
        peft_config=common.lora_config(stage["lora"]),
    )
    settings = {
        **common.used_settings(trainer, kwargs),
        "rewards": rw,
        "vllm_requested": stage["use_vllm"],
        "vllm_fallback": stage.get("vllm_fallback", False),
        "generation_engine": trainer.generation_engine(),
    }
    # TRL logs each reward's batch mean as rewards/<function name>/mean.
    reward_logs = {f"rewards/{f.__name__}/mean": rw[name] for name, f in funcs.items()}
    common.run(trainer, args, "grpo", settings, reward_logs)


if __name__ == "__main__":
    main()
