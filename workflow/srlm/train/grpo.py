"""RL stage: TRL GRPOTrainer with the paper's two rewards (format ±1, accuracy ±1, §3.3).

Every GRPOConfig field that shapes the objective of eq. (3) is set here, never left to TRL's default: the ones
the paper leaves open come from the stage config (CONFIG_KEYS, each commented in config.yaml), the ones eq. (3)
fixes are EQ3 below; the values the trainer used land in train_summary.json (docs/fidelity.md lists them all).
Where vLLM is not used (CPU, our test GPUs) the rollouts are sampled by `srlm.decode` through the project's
generation interface (the same transformers model with a static KV cache and CUDA graphs, 6-10x TRL's
`model.generate` on an H100: docs/performance.md), handed to TRL through its public `rollout_func`, or by TRL's own
`model.generate` for settings srlm.decode does not implement; srlm.generation chooses (`vllm_choice`,
`rollout_engine`) and the summary says which ran.
"""

from __future__ import annotations

import os

import srlm.speed
from srlm import generation, rewards
from srlm.data.io import cli
from srlm.train import arguments, job, records, speed

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
        **arguments.common_args(stage, work_dir, mixed_precision),
        **{k: stage[k] for k in CONFIG_KEYS},
        **EQ3,
        use_vllm=use_vllm,
    )
    # One rollout of the whole global batch per optimizer step, in the largest micro-batches (perf/bench.py).
    kwargs.update(speed.grpo_speed_args(stage, n_processes, has_cuda, node_gpus=node_gpus))
    return kwargs


def prompt_token_ids(prompts: list, trainer) -> list[list[int]]:
    """Each prompt's token ids as TRL renders it (the processing class's chat template with the trainer's template
    arguments, or the plain text without special tokens). Each distinct prompt is rendered once: the sampler
    repeats every prompt num_generations times, and rendering all 128 rows of a step took 15-30 ms."""
    import json

    from trl.data_utils import is_conversational

    lead, copy_of = srlm.speed.distinct(json.dumps(p, sort_keys=True, default=str) for p in prompts)
    distinct = [prompts[i] for i in lead]
    tok = trainer.processing_class
    if is_conversational({"prompt": prompts[0]}):
        ids = tok.apply_chat_template(
            distinct, chat_template=trainer.chat_template, add_generation_prompt=True, tokenize=True,
            return_dict=True, **trainer.chat_template_kwargs,
        )["input_ids"]  # fmt: skip
    else:
        ids = tok(distinct, add_special_tokens=False)["input_ids"]
    return [list(ids[j]) for j in copy_of]


def decode_rollouts(prompts: list, trainer) -> dict:
    """TRL `rollout_func`: one completion per prompt of the process's slice (the sampler already repeats each
    prompt num_generations times), sampled by srlm.decode with the trainer's sampling settings, from the prompts
    as TRL renders them (`prompt_token_ids`). Token ids only: TRL detokenizes the completions itself."""
    import torch
    from trl.models import unwrap_model_for_generation

    tok = trainer.processing_class
    prompt_ids = prompt_token_ids(prompts, trainer)
    # seed None: the trainer's RNG (saved in every checkpoint) drives the draws, so a resumed run retraces them.
    sampling = generation.Sampling(
        trainer.temperature, trainer.top_p, trainer.top_k or 0, trainer.max_completion_length, 1, None
    )
    with (
        unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
            gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
        ) as model,
        torch.no_grad(),
    ):
        engine = generation.wrap(
            model, tok, "srlm.decode", eos_ids=trainer.eos_token_ids,
            max_model_length=model.config.max_position_embeddings, batch_size=None,
            compile_decode=getattr(trainer, "compile_decode", False),  # set by compile_models
        )  # fmt: skip
        outs = engine.generate(prompt_ids, sampling, texts=False)
    return {"prompt_ids": prompt_ids, "completion_ids": [o[0].token_ids for o in outs], "logprobs": None}


def compile_models(trainer) -> int:
    """Compile the decoder layers of the policy, and of the reference model from micro-batches of
    speed.GRPO_COMPILE_REF_MIN_MICRO rows (srlm.speed.compile_layers); returns how many. Where the layers compile,
    the rollouts of srlm.decode (`decode_rollouts`) compile its decode step too (`trainer.compile_decode`; on a GPU)."""
    n = srlm.speed.compile_layers(trainer.model)
    trainer.compile_decode = n > 0
    ref = getattr(trainer, "ref_model", None)
    if n and ref is not None and trainer.args.per_device_train_batch_size >= speed.GRPO_COMPILE_REF_MIN_MICRO:
        n += srlm.speed.compile_layers(ref)
    return n


def maskless(trainer) -> bool:
    """rl stage key maskless_attention: the policy and the reference model attend through srlm.speed.packed's
    shifted attention (rows moved to their start, causal attention without a mask), exactly as through SDPA
    with the padding mask (tests/unit/test_packed.py); whether they do (not where srlm.speed is unproven)."""
    models = [trainer.model] + ([trainer.ref_model] if getattr(trainer, "ref_model", None) is not None else [])
    return srlm.speed.use_shifted(*(trainer.accelerator.unwrap_model(m) for m in models))


def end_turn_at(model, tokenizer, token: str) -> None:
    """Rollouts end at `token` (config models.<m>.eos_token) too. TRL stops and masks a completion at the model's
    generation_config EOS tokens and the tokenizer's EOS; a base model names only <|endoftext|>, which never
    closes a ChatML turn, so its rollouts would run on past </answer> to the length limit."""
    from srlm.generation.hf import token_id

    eos = model.generation_config.eos_token_id
    ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    end = token_id(tokenizer, token)
    if end not in ids:
        model.generation_config.eos_token_id = [*ids, end]


@cli
def main(argv=None) -> None:
    args = job.parse_args(argv, __doc__.splitlines()[0])
    stage, p = args.params["stage"], args.params
    # rollout_func is documented but marked experimental: say so once here, not in every job log.
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    use_vllm = generation.vllm_choice(stage)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype="auto")
    end_turn_at(model, tokenizer, p["model"]["eos_token"])
    data = load_dataset("json", data_files=args.data, split="train")
    kwargs = config_kwargs(
        stage,
        args.work_dir,
        p["mixed_precision"],
        use_vllm=use_vllm,
        n_processes=arguments.world_size(),
        has_cuda=arguments.has_cuda(),
        node_gpus=p["node_gpus"],
    )
    if use_vllm and not arguments.has_cuda():  # vLLM's CPU build (tests): TRL's 0.9 would be 90% of the node's RAM
        from srlm.generation.vllm import CPU_MEMORY_SHARE

        kwargs["vllm_gpu_memory_utilization"] = CPU_MEMORY_SHARE
    srlm.speed.attention_backends()
    rw = stage["rewards"]
    funcs = {
        "format": rewards.make_format_reward(**rw["format"]),
        "accuracy": rewards.make_accuracy_reward(**rw["accuracy"]),
    }
    config = GRPOConfig(**kwargs)
    engine = generation.rollout_engine(model, config)
    trainer = GRPOTrainer(
        model=model,
        args=config,
        train_dataset=data,
        processing_class=tokenizer,
        reward_funcs=list(funcs.values()),
        peft_config=arguments.lora_config(stage["lora"]),
        rollout_func=decode_rollouts if engine == "srlm.decode" else None,
    )
    # What ran: srlm.speed takes the padded path where it is not proven on the installed libraries.
    maskless_attention = stage["maskless_attention"] and maskless(trainer)
    # Not with TRL's own model.generate rollouts, which would run the compiled layers with a KV cache (one
    # compilation per layer index; srlm.decode inlines them into its compiled step or runs them eagerly).
    compiled = compile_models(trainer) if arguments.compiles(p) and engine != "transformers generate" else 0
    settings = {
        **records.used_settings(trainer, kwargs),
        "compiled_layers": compiled,
        "maskless_attention": maskless_attention,
        "rewards": rw,
        "vllm_requested": stage["use_vllm"],
        "vllm_fallback": stage["vllm_fallback"],
        "generation_engine": engine,
    }
    job.run(trainer, args, "grpo", settings)


if __name__ == "__main__":
    main()
