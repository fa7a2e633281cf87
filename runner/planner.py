"""The batch planner behind mode `auto`. Torch-free: it runs in the web process.

Given the prompts, the rank count and a memory budget it proposes the plan that
needs the fewest generate rounds on the busiest rank:

1. the largest batch that fits the memory budget (weights + KV cache + prefill
   activations, estimated from the model's config), never more prompts than a
   rank holds;
2. a split that balances estimated tokens (prompt length + new tokens) across
   ranks instead of prompt counts, no rank taking more rounds than it must;
3. on every rank, prompts sorted by length and cut into batches of even size,
   so a batch pads little and no round is a straggler of a few prompts.

The plan is plain JSON: the worker reads `assignment[rank]` (batches of prompt
indices) and `warmup_batches[rank]`; the studio shows `describe_plan(plan)`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from runner.batching import padded_positions, warmup_shapes

PLAN_VERSION = 1
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# The embedded tiny model's shape (runner/tiny.py builds it), for when it is not built yet.
TINY_SHAPE = {"model_type": "llama", "vocab_size": 259, "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4,
              "num_attention_heads": 4, "num_key_value_heads": 4, "tie_word_embeddings": True}
# Share of the budget the planner fills: allocator fragmentation, the framework's
# own buffers and the logits are not in the estimate.
BUDGET_FILL = 0.8
CPU_MEMORY_SHARE = 0.5  # of the memory available now, split over the ranks
# Of a GPU's free memory as nvidia-smi reports it before launch: the rank's own
# CUDA context and the allocator's rounding come out of it after that reading.
GPU_MEMORY_SHARE = 0.9
# Eager attention materialises the scores (in the model's dtype) and softmaxes
# them in float32, so each prompt position pair costs this many bytes per head.
EAGER_SCORE_EXTRA_BYTES = 4
# What the estimate does not count, said in every plan (the budget's fill leaves room for them).
LEFT_OUT = ("NCCL's communication buffers (tensor-parallel and multi-rank runs), which NCCL sizes itself",
            "the CUDA context and the allocator's rounding and fragmentation",
            "host memory: safetensors files are mapped, so their pages count in a rank's host RSS "
            "while they load, beside the device memory the weights take")


@dataclass(frozen=True)
class ModelShape:
    """What the memory and bandwidth estimates need from a model's config."""

    params: int
    bytes_per_param: int
    layers: int
    hidden: int
    intermediate: int
    kv_heads: int
    head_dim: int
    vocab: int
    heads: int = 0
    # parameters every rank of a tensor group holds whole: Llama's tp plan (transformers'
    # LlamaConfig.base_model_tp_plan) splits the layers' projections and the lm_head, and
    # leaves embed_tokens and the norms replicated; a tied lm_head is embed_tokens itself
    replicated_params: int = 0

    def per_rank(self, tp: int) -> "ModelShape":
        """One rank's share of a tensor group of `tp`: the split parameters and the
        key-value heads divided, the replicated parameters whole."""
        if tp <= 1:
            return self
        split = self.params - self.replicated_params
        return dataclasses.replace(self, params=self.replicated_params + split // tp,
                                   kv_heads=max(1, self.kv_heads // tp))

    @property
    def weight_bytes(self) -> int:
        return self.params * self.bytes_per_param

    @property
    def kv_bytes_per_token(self) -> int:
        """Keys and values of one position in every layer."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.bytes_per_param

    def prefill_bytes_per_token(self) -> int:
        """Activations alive at once while a layer runs over the prompt (hidden
        states, q/k/v, the MLP's gate and up projections), a rough upper bound."""
        return (4 * self.hidden + 3 * self.intermediate) * self.bytes_per_param

    def attention_workspace_bytes(self, attention: str, prompt_length: int) -> int:
        """Extra bytes one sequence needs for attention scores at prefill, in one
        layer at a time. Eager attention holds a heads x L x L score matrix, O(L^2);
        the fused kernels (sdpa, flash) work in tiles, so they add nothing of note."""
        if attention != "eager":
            return 0
        return self.heads * prompt_length * prompt_length * (self.bytes_per_param + EAGER_SCORE_EXTRA_BYTES)

    def prefill_mask_bytes(self, attention: str, prompt_length: int, kv_length: int, padded: bool) -> int:
        """Bytes one sequence's share of the prefill's [B, 1, L, kv] attention mask takes.
        transformers' sdpa_mask leaves a causal mask to SDPA's is_causal only when no row is
        padded and the keys are the prompt itself; left padding, or a static cache longer
        than the prompt, makes it build the whole mask, one bool byte an element (1 GiB at
        64 x 4096 x 4096). Eager turns that bool mask into one of the model's dtype."""
        if attention != "eager" and not padded and kv_length == prompt_length:
            return 0
        per_element = 1 + (self.bytes_per_param if attention == "eager" else 0)
        return prompt_length * kv_length * per_element

    def to_dict(self) -> dict:
        return {"params": self.params, "weight_bytes": self.weight_bytes,
                "kv_bytes_per_token": self.kv_bytes_per_token, "bytes_per_param": self.bytes_per_param}


def shape_from_config(config: dict, dtype: str) -> ModelShape:
    """Parameter count of a decoder-only transformer (Llama/Mistral/GPT-style keys)."""
    config = config.get("text_config", config) if "hidden_size" not in config else config
    hidden = int(config.get("hidden_size") or config.get("n_embd"))
    layers = int(config.get("num_hidden_layers") or config.get("n_layer"))
    heads = int(config.get("num_attention_heads") or config.get("n_head"))
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    intermediate = int(config.get("intermediate_size") or config.get("n_inner") or 4 * hidden)
    vocab = int(config["vocab_size"])
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2  # q, o; k, v
    mlp = 3 * hidden * intermediate if config.get("hidden_act", "silu") in ("silu", "swiglu") else 2 * hidden * intermediate
    per_layer = attention + mlp + 2 * hidden
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings", False) else 2)
    params = layers * per_layer + embeddings + hidden
    replicated = vocab * hidden + layers * 2 * hidden + hidden  # embed_tokens, the norms
    return ModelShape(params=params, bytes_per_param=DTYPE_BYTES.get(dtype, 4), layers=layers, hidden=hidden,
                      intermediate=intermediate, kv_heads=kv_heads, head_dim=head_dim, vocab=vocab, heads=heads,
                      replicated_params=replicated)


def model_config(model: dict) -> dict:
    """The model's config as a dict, from a ModelSpec's `to_dict()`; torch-free."""
    kind, path = model["kind"], Path(model["path"])
    if kind == "arch":
        return json.loads(path.read_text())
    if kind == "tiny" and not (path / "config.json").exists():
        return dict(TINY_SHAPE)
    return json.loads((path / "config.json").read_text())


def model_shape(model: dict, dtype: str) -> ModelShape:
    return shape_from_config(model_config(model), dtype)


def token_lengths(prompts: Sequence[str], model: dict) -> tuple[list[int], str]:
    """Prompt lengths in tokens and where they came from. `tiny` and `arch:` use
    the byte tokenizer (one token per UTF-8 byte, no BOS); other models are
    measured with their tokenizer.json through `tokenizers` (no torch)."""
    if model["kind"] in ("tiny", "arch"):
        return [len(p.encode("utf-8")) for p in prompts], "utf-8 bytes (byte tokenizer)"
    tokenizer_file = Path(model["path"]) / "tokenizer.json"
    if tokenizer_file.is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        return [len(e.ids) for e in tokenizer.encode_batch(list(prompts))], "the model's tokenizer.json"
    # No fast tokenizer file: about four characters a token for English text.
    return [max(1, len(p) // 4) for p in prompts], "estimate (4 characters a token; no tokenizer.json)"


def available_memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_budget_bytes(budget_gb: float | None, device: str, world_size: int,
                        gpu_memory_mib: Sequence[int] = (), gpu_free_mib: Sequence[int | None] = ()) -> tuple[int, str]:
    """Bytes one rank may use, and a sentence saying where the number came from.
    On GPUs: from the memory free now on the GPU with the least free (what other
    processes hold is not there to take), total memory only where free is unknown."""
    if budget_gb:
        return int(budget_gb * 2**30), f"the run's memory budget of {budget_gb:g} GiB per rank"
    if device == "cuda" and gpu_free_mib and all(f is not None and f > 0 for f in gpu_free_mib):
        least = min(gpu_free_mib)
        return (int(least * 2**20 * GPU_MEMORY_SHARE),
                f"{GPU_MEMORY_SHARE:.0%} of the {least / 1024:.1f} GiB free (nvidia-smi, before launch) on the GPU "
                f"with the least free")
    if device == "cuda" and gpu_memory_mib and min(gpu_memory_mib) > 0:
        smallest = min(gpu_memory_mib)
        return (int(smallest * 2**20 * GPU_MEMORY_SHARE),
                f"{GPU_MEMORY_SHARE:.0%} of the smallest GPU's {smallest / 1024:.0f} GiB total (free memory unknown)")
    available = available_memory_bytes() or 8 * 2**30
    return (int(available * CPU_MEMORY_SHARE / world_size),
            f"{CPU_MEMORY_SHARE:.0%} of the {available / 2**30:.1f} GiB of free RAM, split over {world_size} process(es)")


def per_sequence_bytes(shape: ModelShape, longest_prompt: int, max_new_tokens: int, attention: str = "auto",
                       cache: str = "dynamic", padded: bool = True) -> dict:
    """What one sequence of the batch costs, by part. `padded`: whether a batch's rows
    differ in length (left padding), which makes the prefill build its attention mask."""
    kv_length = longest_prompt + max_new_tokens if cache == "static" else longest_prompt
    return {
        "kv_cache": (longest_prompt + max_new_tokens) * shape.kv_bytes_per_token,
        "prefill_activations": longest_prompt * shape.prefill_bytes_per_token(),
        "attention_workspace": shape.attention_workspace_bytes(attention, longest_prompt),
        "attention_mask": shape.prefill_mask_bytes(attention, longest_prompt, kv_length, padded),
    }


def max_batch_for_memory(shape: ModelShape, budget: int, longest_prompt: int, max_new_tokens: int,
                         attention: str = "auto", cache: str = "dynamic", padded: bool = True) -> int:
    """The largest batch whose KV cache, prefill activations, attention mask and
    (eager) attention scores fit beside the weights."""
    free = budget * BUDGET_FILL - shape.weight_bytes
    per_sequence = sum(per_sequence_bytes(shape, longest_prompt, max_new_tokens, attention, cache, padded).values())
    if free <= 0:
        return 0
    return int(free // per_sequence)


def balance(costs: Sequence[int], world_size: int, capacity: int) -> list[list[int]]:
    """Longest-processing-time-first: the most expensive prompt goes to the rank
    with the least work that still has room (`capacity` prompts at most), which
    keeps the busiest rank within one prompt's cost of the best split."""
    ranks: list[list[int]] = [[] for _ in range(world_size)]
    loads = [0] * world_size
    for index in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        open_ranks = [r for r in range(world_size) if len(ranks[r]) < capacity]
        target = min(open_ranks, key=lambda r: (loads[r], len(ranks[r]), r))
        ranks[target].append(index)
        loads[target] += costs[index]
    return ranks


def even_batches(indices: Sequence[int], lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Longest first, cut into the fewest batches of at most `batch_size`, sizes
    differing by one at most (100 prompts at 64 make 50 + 50, not 64 + 36)."""
    order = sorted(indices, key=lambda i: (-lengths[i], i))
    if not order:
        return []
    rounds = math.ceil(len(order) / batch_size)
    base, extra = divmod(len(order), rounds)
    batches, start = [], 0
    for r in range(rounds):
        size = base + (1 if r < extra else 0)
        batches.append(order[start : start + size])
        start += size
    return batches


def make_plan(
    lengths: Sequence[int],
    *,
    max_new_tokens: int,
    world_size: int,
    shape: ModelShape,
    budget_bytes: int,
    budget_source: str = "",
    lengths_source: str = "",
    batch_limit: int = 1024,
    every_shape_warmup: bool = False,
    attention: str = "auto",
    cache: str = "dynamic",
) -> dict:
    """The plan for these prompt lengths; pure, so tests can feed it known inputs."""
    n = len(lengths)
    if n == 0:
        raise ValueError("no prompts to plan for")
    longest = max(lengths)
    per_rank = math.ceil(n / world_size)
    padded = min(lengths) != longest
    by_memory = max_batch_for_memory(shape, budget_bytes, longest, max_new_tokens, attention, cache, padded)
    parts = per_sequence_bytes(shape, longest, max_new_tokens, attention, cache, padded)
    if by_memory < 1:
        raise ValueError(
            f"the model's weights ({shape.weight_bytes / 2**30:.2f} GiB) and one sequence do not fit the memory "
            f"budget of {budget_bytes / 2**30:.2f} GiB; raise the budget or use a smaller model or dtype"
        )
    cap = max(1, min(by_memory, batch_limit))
    rounds = math.ceil(per_rank / cap)
    # Every rank may take `rounds` batches of the largest size that fits; balancing
    # tokens may move prompts between ranks but never adds a round to the busiest one.
    costs = [length + max_new_tokens for length in lengths]
    split = balance(costs, world_size, rounds * cap)
    assignment = [even_batches(mine, lengths, cap) for mine in split]
    batch_size = max(len(b) for rank in assignment for b in rank)
    all_batches = [b for rank in assignment for b in rank]
    estimated = [sum(costs[i] for i in mine) for mine in split]
    naive = padded_positions(
        [list(range(s, min(s + batch_size, n))) for s in range(0, n, batch_size)], lengths
    )

    reasons = [
        f"{n} prompts over {world_size} rank(s): at least {per_rank} prompts on the busiest rank.",
        f"Memory: {shape.weight_bytes / 2**30:.2f} GiB of weights, {shape.kv_bytes_per_token / 1024:.1f} KiB of KV "
        f"cache per token; at {longest} + {max_new_tokens} tokens a sequence, {by_memory} sequences fit "
        f"{BUDGET_FILL:.0%} of {budget_source or f'{budget_bytes / 2**30:.1f} GiB'}"
        + (f", counting {parts['attention_workspace'] / 2**20:.1f} MiB of eager attention scores a sequence"
           if parts["attention_workspace"] else "")
        + (f", and {parts['attention_mask'] / 2**20:.1f} MiB of the prefill's attention mask a sequence "
           f"(rows of unequal length are padded)" if parts["attention_mask"] else "") + ".",
        "Not in the estimate: " + "; ".join(LEFT_OUT) + ".",
        f"Batch size {batch_size} "
        + ("(every prompt of a rank in one batch)" if rounds == 1 else
           "(memory-bound; the user's batch size is not used in auto mode)")
        + f": {rounds} generate round(s) on the busiest rank, against {math.ceil(per_rank / 16)} at batch 16.",
        f"Split balances estimated tokens (prompt + {max_new_tokens} new): per rank "
        f"{', '.join(str(e) for e in estimated)} (busiest/mean {max(estimated) / (sum(estimated) / world_size):.3f}).",
        f"Prompts sorted by length inside each rank: {padded_positions(all_batches, lengths)} padded prompt positions "
        f"against {naive} for unsorted batches of the same size (lengths: {lengths_source or 'given'}).",
    ]
    return {
        "version": PLAN_VERSION,
        "world_size": world_size,
        "batch_size": batch_size,
        "rounds": rounds,
        "max_batch_by_memory": by_memory,
        "sort_by_length": True,
        "assignment": assignment,
        "warmup_batches": [warmup_shapes(batches, every_shape_warmup) for batches in assignment],
        "estimated_tokens": estimated,
        "prompt_counts": [len(m) for m in split],
        "padded_positions": padded_positions(all_batches, lengths),
        "padded_positions_unsorted": naive,
        "memory": {"budget_bytes": budget_bytes, **shape.to_dict(),
                   "budget": {"source": budget_source or "given", "bytes": budget_bytes, "fill": BUDGET_FILL,
                              "weights_bytes": shape.weight_bytes, "attention": attention,
                              "per_sequence_bytes": parts, "left_out": list(LEFT_OUT)}},
        "lengths_source": lengths_source,
        "reasons": reasons,
    }


def describe_plan(plan: dict | None) -> str:
    """The plan and why, as Markdown for the run-detail view."""
    if not plan:
        return "No plan: this run batched prompts in the order given (mode simple or batched)."
    sizes = [[len(b) for b in rank] for rank in plan["assignment"]]
    lines = [
        f"**Plan:** batch size {plan['batch_size']}, {plan['rounds']} round(s) on the busiest rank, "
        f"{plan['world_size']} rank(s), prompts sorted by length.",
        "",
        *[f"- {reason}" for reason in plan.get("reasons", [])],
        "",
        "Batches per rank: " + "; ".join(f"rank {r}: {s}" for r, s in enumerate(sizes)),
    ]
    return "\n".join(lines)
