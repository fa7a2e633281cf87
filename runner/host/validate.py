"""Checks a RunConfig against this machine before anything is launched.

One function, called by every entry point through `prepare`, so the CLI, the
page and the API refuse the same things with the same words.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from runner.config import ConfigError, RunConfig
from runner.host.hardware import Inventory, detect
from runner.layout import heads_problem, layout_memory_bytes, smallest_fitting_tp, tp_plan_of
from runner.models import ModelSpec, resolve_model

BYTE_TOKENIZER_KINDS = ("tiny", "arch")


@dataclass(frozen=True)
class Prepared:
    config: RunConfig
    model: ModelSpec
    device: str
    dtype: str
    # what each local rank's cuda:i must be (name, uuid), checked by the worker
    expected_devices: tuple = ()


def resolve_device(config: RunConfig, inventory: Inventory) -> str:
    if config.device == "auto":
        return inventory.default_device
    if config.device == "cuda" and inventory.gpu_count == 0:
        raise ConfigError("device", "cuda was asked for but this machine has no visible GPU; use cpu or auto")
    return config.device


BF16_MIN_CAPABILITY = (8, 0)  # Ampere: the first NVIDIA GPUs with bfloat16 arithmetic


def resolve_dtype(config: RunConfig, device: str, capability: tuple[int, int] | None = None) -> str:
    """`auto`: float32 on CPU; on a GPU bfloat16 where its compute capability is
    known to be 8.0 or newer, float16 otherwise (every CUDA GPU runs float16).
    An explicit bfloat16 on a GPU known to be older is refused here, before launch."""
    if device != "cuda":
        return "float32" if config.dtype == "auto" else config.dtype
    if config.dtype == "auto":
        return "bfloat16" if capability is not None and capability >= BF16_MIN_CAPABILITY else "float16"
    if config.dtype == "bfloat16" and capability is not None and capability < BF16_MIN_CAPABILITY:
        raise ConfigError(
            "dtype", f"bfloat16 needs a GPU of compute capability 8.0 or newer; the oldest visible GPU here is "
                     f"{capability[0]}.{capability[1]}; use float16 or auto")
    return config.dtype


def check_process_count(count: int, config: RunConfig, inventory: Inventory | None = None) -> None:
    """The machine's cap on processes a node runs, one message for every count above it
    (65 too: RunConfig's own bound of 64 would name the field instead of the machine)."""
    inventory = inventory or detect()
    device = resolve_device(config, inventory)
    limit = inventory.max_processes(device)
    if count > limit:
        what = "GPUs" if device == "cuda" else "CPU processes"
        raise ConfigError("gpus", f"{count} {what} asked for, this machine allows at most {limit}; lower the count")


def prepare(config: RunConfig, inventory: Inventory | None = None) -> Prepared:
    inventory = inventory or detect()
    device = resolve_device(config, inventory)
    check_process_count(config.gpus_per_node, config, inventory)
    if config.trust_remote_code and not remote_code_allowed():
        raise ConfigError(
            "trust_remote_code", "is off in this studio; only the server's --trust-remote-code start-up flag allows it"
        )
    spec = resolve_model(config.model)
    check_context(config, spec)
    capability = inventory.min_capability() if device == "cuda" else None
    expected = tuple(inventory.expected_devices()) if device == "cuda" else ()
    dtype = resolve_dtype(config, device, capability)
    check_layout(config, spec, device, dtype, inventory)
    return Prepared(config=config, model=spec, device=device, dtype=dtype, expected_devices=expected)


def check_context(config: RunConfig, spec: ModelSpec) -> None:
    """Refuse prompts and new tokens that do not fit the model's context. Synthetic
    prompts (`prompt_tokens`) are checked by their exact length before they are made;
    given prompts by their bytes where the tokenizer reads one token a byte, and
    otherwise only the new tokens, since a real tokenizer is not loaded here."""
    context = spec.context_length
    if not context:
        return
    if config.prompt_tokens is not None:
        if config.prompt_tokens + config.max_new_tokens > context:
            raise ConfigError("prompt_tokens", f"{config.prompt_tokens} prompt tokens + {config.max_new_tokens} new "
                              f"tokens do not fit {config.model}'s context of {context} tokens; lower one")
        return
    if config.max_new_tokens >= context:
        raise ConfigError("max_new_tokens", f"{config.max_new_tokens} does not fit the model's context of {context} "
                          f"tokens; use at most {context - 1}")
    if spec.kind in BYTE_TOKENIZER_KINDS:
        longest = max(len(p.encode("utf-8")) for p in config.prompts)
        if longest + config.max_new_tokens > context:
            raise ConfigError("max_new_tokens", f"the longest prompt ({longest} tokens) plus {config.max_new_tokens} "
                              f"new tokens exceeds the model's context of {context}; shorten the prompt or lower max "
                              "new tokens")


def check_layout(config: RunConfig, spec: ModelSpec, device: str, dtype: str, inventory: Inventory) -> None:
    """Refuse, before launch, a layout that cannot run: a tensor-parallel size that
    does not split the model's heads, a model without a tensor-parallel plan, a
    path that cannot be sharded, or a model whose share does not fit each GPU."""
    from runner.planner import memory_budget_bytes, model_config, shape_from_config, token_lengths

    tp = config.tp_size
    if tp == 1 and device != "cuda" and config.memory_budget_gb is None:
        return  # one full copy per process, on CPU without a stated budget: nothing to hold it to
    raw = model_config(spec.to_dict())
    try:
        shape = shape_from_config(raw, dtype)
    except (TypeError, KeyError, ValueError, ZeroDivisionError):
        if tp > 1:
            raise ConfigError("tp_size", f"cannot read {config.model}'s attention heads from its config.json, so it cannot "
                              "be split safely; use tp 1") from None
        return  # an unusual config: no estimate to refuse it by
    if tp > 1:
        problem = heads_problem(tp, shape.heads, shape.kv_heads)
        if problem:
            raise ConfigError("tp_size", f"{problem} ({config.model})")
        if spec.kind == "arch":
            raise ConfigError("tp_size", f"{config.model} is built with random weights by from_config, which transformers "
                              "cannot shard; use tp 1, or a model folder (tiny, a local folder or a cached hub id)")
        if config.continuous_batching or config.compile:
            what = "continuous batching" if config.continuous_batching else "torch.compile"
            raise ConfigError("tp_size", f"{what} is not run with tensor parallelism here; use tp 1 or switch it off")
        if tp_plan_of(str(raw.get("model_type", ""))) is None:
            raise ConfigError("tp_size", f"transformers has no tensor-parallel plan for {config.model} "
                              f"(model type {raw.get('model_type')!r}); use tp 1, one copy of the model per GPU")
    if device != "cuda" and config.memory_budget_gb is None:
        return  # on CPU without a stated budget there is no per-device memory to hold the layout to
    budget, source = memory_budget_bytes(config.memory_budget_gb, device, config.world_size,
                                         inventory.gpu_memory_mib, inventory.gpu_free_mib)
    batch = 1 if config.mode in ("simple", "auto") else min(config.batch_size, len(config.prompts))
    longest = max(token_lengths(config.prompts, spec.to_dict())[0]) + config.max_new_tokens
    replicated = shape.replicated_params * shape.bytes_per_param
    need = layout_memory_bytes(shape.weight_bytes, shape.kv_bytes_per_token, longest, batch, tp, replicated)
    if need <= budget:
        return
    gib = 2**30
    split = f", split {tp} ways" if tp > 1 else ""
    what = (f"{config.model} in {dtype} needs {need / gib:.1f} GiB on each GPU at tp {tp} ({shape.weight_bytes / gib:.1f} "
            f"GiB of weights and the KV cache of a batch of {batch} at {longest} tokens{split}), more than "
            f"{source} ({budget / gib:.1f} GiB)")
    fits = smallest_fitting_tp(shape.weight_bytes, shape.kv_bytes_per_token, longest, batch, budget,
                               shape.heads, shape.kv_heads, replicated_bytes=replicated)
    if fits is None:
        raise ConfigError("tp_size", f"{what}; no tensor-parallel size up to 64 fits: lower the batch size or new tokens, "
                          "or use a smaller dtype")
    if spec.kind == "arch":
        raise ConfigError("tp_size", f"{what}; it would fit at tp {fits}, but arch: models are built unsharded: use a model "
                          f"folder of this architecture with --gpus {fits} --tp {fits}, a smaller dtype or batch")
    raise ConfigError("tp_size", f"{what}; the smallest tp that fits is {fits}: run --gpus {fits} --tp {fits} "
                      f"(or a multiple of {fits} GPUs)")


def remote_code_allowed() -> bool:
    return os.environ.get("STUDIO_TRUST_REMOTE_CODE") == "1"


def engines_allowed() -> bool:
    """An engine command or a server URL from the page or the API: the command runs on
    this machine and the URL is fetched from it, so `studio serve --allow-engines` must say so."""
    return os.environ.get("STUDIO_ALLOW_ENGINES") == "1"


def plan_for(prepared, inventory=None) -> dict:
    """The plan for a prepared run (a `Prepared`): the planner's pure plan over
    this host's memory."""
    from runner.planner import make_plan, memory_budget_bytes, model_shape, token_lengths

    config, model = prepared.config, prepared.model.to_dict()
    lengths, source = token_lengths(config.prompts, model)
    shape = model_shape(model, prepared.dtype)
    gpu_memory: tuple = ()
    gpu_free: tuple = ()
    if prepared.device == "cuda":
        from runner.host.hardware import detect

        inventory = inventory or detect()
        gpu_memory, gpu_free = inventory.gpu_memory_mib, inventory.gpu_free_mib
    budget, budget_source = memory_budget_bytes(config.memory_budget_gb, prepared.device, config.world_size,
                                                gpu_memory, gpu_free)
    if config.tp_size > 1:
        # each rank of a tensor group holds its share of the weights and key-value heads, and the
        # prompts go to the data-parallel groups: plan for one rank's share over dp_size groups
        shape = shape.per_rank(config.tp_size)
    plan = make_plan(lengths, max_new_tokens=config.max_new_tokens, world_size=config.dp_size, shape=shape,
                     budget_bytes=budget, budget_source=budget_source, lengths_source=source,
                     every_shape_warmup=config.compile, attention=config.attention, cache=config.cache)
    plan["generation"] = {"cache": config.cache, "compile": config.compile, "attention": config.attention}
    if config.tp_size > 1:
        plan["tp_size"] = config.tp_size
        plan["reasons"].insert(0, f"Tensor parallel: {config.tp_size} ranks share each copy of the model, so the "
                               f"plan is over its {config.dp_size} copies (a 'rank' below is one copy), each rank "
                               f"holding 1/{config.tp_size} of the split weights and of the KV cache, and the "
                               f"replicated ones (embeddings, norms) whole.")
    return plan
