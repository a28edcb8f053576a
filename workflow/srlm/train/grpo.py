"""RL stage: TRL GRPOTrainer with the paper's two rewards (format ±1, accuracy ±1, §3.3).

Every GRPOConfig field that shapes the objective of eq. (3) is set here, never left to TRL's default: the ones
the paper leaves open come from the stage config (CONFIG_KEYS, each commented in config.yaml), the ones eq. (3)
fixes are EQ3 below; the values the trainer used land in train_summary.json (docs/fidelity.md lists them all).
Where vLLM is not installed (CPU, our test GPUs) the rollouts are sampled by `srlm.decode` (the same transformers
model with a static KV cache and CUDA graphs, 6-10x TRL's `model.generate` on an H100: docs/performance.md), or by
TRL's own `model.generate` for settings it does not implement; the summary says which.
"""

from __future__ import annotations

import importlib.util

from srlm import decode, rewards
from srlm.train import common, speed


# Stage config keys passed to GRPOConfig under the same name (config.yaml says why each has its value).
CONFIG_KEYS = (
    "num_generations",
    "max_completion_length",
    "beta",
    "epsilon",
    "num_iterations",
    "loss_type",
    "scale_rewards",
    "use_bias_correction_kl",
    "temperature",
    "top_p",
    "top_k",
    "vllm_mode",
    "vllm_importance_sampling_correction",
    "vllm_importance_sampling_mode",
    "vllm_importance_sampling_clip_max",
)
# GRPOConfig fields that eq. (3) fixes, passed explicitly so that no TRL default change can alter the objective:
# per-token ratios clipped to [1-ε, 1+ε] on both sides with no extra bound, every token of every one of the G
# completions in the loss (truncated ones too), no entropy term, advantages from the summed rewards, a fixed π_ref.
EQ3 = {
    "importance_sampling_level": "token",
    "epsilon_high": None,
    "delta": None,
    "mask_truncated_completions": False,
    "top_entropy_quantile": 1.0,
    "off_policy_mask_threshold": None,
    "entropy_coef": 0.0,
    "multi_objective_aggregation": "sum_then_normalize",
    "sync_ref_model": False,
}


def config_kwargs(
    stage: dict,
    work_dir,
    mixed_precision: str,
    *,
    use_vllm: bool,
    n_processes: int,
    has_cuda: bool,
    node_gpus: int,
) -> dict:
    """GRPOConfig kwargs of a job: the stage's objective and sampling settings, EQ3, and the speed settings."""
    kwargs = dict(
        **common.common_args(stage, work_dir, mixed_precision),
        **{k: stage[k] for k in CONFIG_KEYS},
        **EQ3,
        use_vllm=use_vllm,
    )
    # One rollout of the whole global batch per optimizer step, in the largest micro-batches (perf/bench.py).
    kwargs.update(speed.grpo_speed_args(stage, n_processes, has_cuda, node_gpus=node_gpus))
    return kwargs


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


def main(argv=None) -> None:
    args = common.parse_args(argv, __doc__.splitlines()[0])
    stage, p = args.params["stage"], args.params
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    use_vllm = stage["use_vllm"] and importlib.util.find_spec("vllm") is not None
    if stage["use_vllm"] and not use_vllm:
        print("vllm is not installed: GRPO generates with transformers", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype="auto")
    data = load_dataset("json", data_files=args.data, split="train")
    kwargs = config_kwargs(
        stage,
        args.work_dir,
        p["mixed_precision"],
        use_vllm=use_vllm,
        n_processes=common.world_size(),
        has_cuda=common.has_cuda(),
        node_gpus=p.get("node_gpus", speed.PAPER_GPUS),
    )
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
        "generation_engine": trainer.generation_engine(),
    }
    # TRL logs each reward's batch mean as rewards/<function name>/mean.
    reward_logs = {f"rewards/{f.__name__}/mean": rw[name] for name, f in funcs.items()}
    common.run(trainer, args, "grpo", settings, reward_logs)


if __name__ == "__main__":
    main()
