"""The generate paths a worker can take. Imports torch; only workers (and the
tests) use it.

- `plain`: `model.generate` with the dynamic KV cache, batch after batch.
- `static`: `model.generate` with a StaticCache of one length for the whole run
  (longest padded prompt + max new tokens), so every batch of one size has the
  same decode shapes; with `compile` those decode steps run through
  `torch.compile` (transformers' own auto-compile, enabled on every device).
  One cache object per batch shape, reset between batches (`StaticCachePool`):
  a new cache has new tensor addresses, which under `compile` re-records the
  CUDA graphs inside the timed window.
  Without `compile`, transformers' auto-compile is switched off, so "static"
  means static and nothing else.
- `continuous`: transformers' continuous batching (`model.generate_batch`), one
  call with all of a rank's prompts; it schedules them itself.

Every path returns, per prompt, the generated token ids (prompt removed) and when
each of them reached the host (`runner.rank.token_clock.TokenClock` for `generate`,
transformers' own per-token timestamps for continuous batching, which are also
read after the tokens are copied to the host), and per call the prompt positions
it fed and the decode steps it ran, which the token accounting and the bandwidth
roofline need.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
import transformers
from packaging.version import Version

from runner.rank.cuda import synchronize

# transformers 5.24 renamed generate's `past_key_values` to `cache` (the old name warns until 6.0)
CACHE_KWARG = "cache" if Version(transformers.__version__) >= Version("5.24.0.dev0") else "past_key_values"


@dataclass
class BatchOutput:
    generated: list[list[int]]  # one list of new token ids per prompt, in the batch's order
    prompt_positions: int  # tokens fed as prompts, padding included
    prompt_lengths: list[int] = field(default_factory=list)  # padded prompt length per row
    steps: int = 0  # decode steps run (longest generated row)
    # latency: per row, when it started (the batch's start, or when continuous batching
    # scheduled it) and when each of its tokens reached the host (perf_counter seconds)
    starts: list[float] = field(default_factory=list)
    token_times: list[list[float]] = field(default_factory=list)


class StaticCachePool:
    """One StaticCache per (batch size, max cache length) of one model, kept for as
    long as the pool lives (one run) and reset before each reuse.

    A StaticCache takes its batch size from its first batch (lazily), so batches
    of another size need another cache; one of the same shape is reused, so its
    tensors keep their addresses and a compiled decode step's CUDA graphs
    recorded in the warm-up are replayed, not re-recorded. `created` counts the
    caches built; `serial` tells pools apart (a new pool's caches are cold).
    The price: the caches of all the run's batch sizes are held at once."""

    _serials = itertools.count()

    def __init__(self):
        self.caches: dict[tuple[int, int], object] = {}
        self.created = 0
        self.serial = next(self._serials)

    def get(self, model_config, batch_size: int, max_cache_len: int):
        key = (batch_size, max_cache_len)
        cache = self.caches.get(key)
        if cache is None:
            from transformers import StaticCache

            cache = self.caches[key] = StaticCache(config=model_config, max_cache_len=max_cache_len)
            self.created += 1
        else:
            # generate does not reset a cache it is given: the last batch's length would carry over
            cache.reset()
        return cache


def path_name(config) -> str:
    if getattr(config, "continuous_batching", False):
        return "continuous"
    if config.cache == "static":
        return "static+compile" if config.compile else "static"
    return "plain"


def generate_kwargs(config, tokenizer, max_new_tokens: int) -> dict:
    kwargs = {
        "max_new_tokens": max_new_tokens,
        "do_sample": config.do_sample,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if config.fixed_length:
        kwargs["min_new_tokens"] = max_new_tokens
    if config.do_sample:
        kwargs.update(temperature=config.temperature, top_p=config.top_p, top_k=config.top_k)
    else:
        # the model's generation_config may carry sampling defaults; greedy means greedy
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


class Generator:
    """Runs one batch of prompts (indices into `prompts`) on one path."""

    def __init__(self, model, tokenizer, config, device: str, prompts: Sequence[str],
                 static_cache_len: int | None = None, caches: StaticCachePool | None = None):
        self.model, self.tokenizer, self.config, self.device = model, tokenizer, config, device
        self.prompts = prompts
        self.path = path_name(config)
        self.static_cache_len = static_cache_len
        # one pool for this generator's calls, warm-up and timed alike
        self.caches = caches if caches is not None else StaticCachePool()
        if self.path.startswith("static"):
            from transformers import CompileConfig

            if config.compile:
                compile_config = CompileConfig(fullgraph=False, dynamic=False)
                # transformers compiles only on accelerators unless told otherwise
                compile_config._compile_all_devices = True
                model.generation_config.compile_config = compile_config
                model.generation_config.disable_compile = False
            else:
                model.generation_config.disable_compile = True

    def __call__(self, batch: Sequence[int], max_new_tokens: int) -> BatchOutput:
        if self.path == "continuous":
            return self._continuous(batch, max_new_tokens)
        return self._generate(batch, max_new_tokens)

    def cache_len(self, width: int, max_new_tokens: int) -> int:
        """The static cache length of a batch of padded width `width`: the run's one
        length (not this batch's), so the compiled decode step sees the same shapes
        on every batch of one size."""
        return max(self.static_cache_len or 0, width + max_new_tokens)

    def warm_shape(self, batch_size: int, width: int, max_new_tokens: int) -> tuple:
        """What must have run before for a batch of this size and padded width to be
        warm. On the static path that is its pooled cache (a cache of another pool,
        though of the same shape, has other addresses, and its graphs re-record)."""
        if not self.path.startswith("static"):
            return (self.path, batch_size, width)
        return (self.path, batch_size, width, self.cache_len(width, max_new_tokens), self.caches.serial)

    def _generate(self, batch: Sequence[int], max_new_tokens: int) -> BatchOutput:
        from runner.rank.token_clock import TokenClock

        # work still queued on the device (an earlier batch, the warm-up) is not this batch's
        synchronize(self.device)
        start = time.perf_counter()
        enc = self.tokenizer([self.prompts[i] for i in batch], return_tensors="pt", padding=True).to(self.device)
        kwargs = generate_kwargs(self.config, self.tokenizer, max_new_tokens)
        clock = TokenClock()
        if getattr(self.config, "latency", True):
            kwargs["streamer"] = clock
        width = int(enc["input_ids"].shape[1])
        with torch.inference_mode():
            if self.path.startswith("static"):
                # in inference mode: the pooled cache's tensors were made in it, and only it may reset them
                kwargs[CACHE_KWARG] = self.caches.get(self.model.config, len(batch),
                                                      self.cache_len(width, max_new_tokens))
            out = self.model.generate(**enc, **kwargs)
        generated = out[:, width:].tolist()
        return BatchOutput(generated=generated, prompt_positions=int(enc["attention_mask"].numel()),
                           prompt_lengths=[width] * len(batch), steps=int(out.shape[1] - width),
                           starts=[start] * len(batch), token_times=[clock.times] * len(batch))

    def _continuous(self, batch: Sequence[int], max_new_tokens: int) -> BatchOutput:
        from transformers import GenerationConfig

        if self.config.do_sample:
            raise ValueError("continuous batching runs greedy here; switch sampling off or continuous batching off")
        synchronize(self.device)
        start = time.perf_counter()
        ids = [self.tokenizer(self.prompts[i])["input_ids"] for i in batch]
        eos = self.model.generation_config.eos_token_id
        gen_config = GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id,
            # fixed length: no EOS stops a request early
            eos_token_id=-1 if self.config.fixed_length else (eos if eos is not None else -1),
        )
        results = self.model.generate_batch(ids, generation_config=gen_config, max_new_tokens=max_new_tokens,
                                            continuous_batching_config=continuous_config(ids, max_new_tokens),
                                            progress_bar=False,
                                            record_timestamps=getattr(self.config, "latency", True))
        # request ids are req_0, req_1, ... in the order given
        ordered = [results[f"req_{i}"] for i in range(len(ids))]
        generated = [list(r.generated_tokens) for r in ordered]
        # a request starts when the scheduler takes it (lifespan[0]); its tokens carry their own times
        starts = [r.lifespan[0] if r.lifespan and r.lifespan[0] > 0 else start for r in ordered]
        return BatchOutput(generated=generated, prompt_positions=sum(len(x) for x in ids),
                           prompt_lengths=[len(x) for x in ids], steps=max((len(g) for g in generated), default=0),
                           starts=starts, token_times=[list(r.timestamps or []) for r in ordered])


CB_PAGE_SIZE = 64


def continuous_config(ids: Sequence[Sequence[int]], max_new_tokens: int):
    """A paged cache sized for this workload. Left to itself, transformers sizes it
    from free accelerator memory; on CPU that is most of the RAM, and the run
    crawls (42 s against 0.9 s for 3 prompts of 12 tokens on tiny)."""
    import math

    from transformers import ContinuousBatchingConfig

    pages = sum(math.ceil((len(x) + max_new_tokens) / CB_PAGE_SIZE) for x in ids)
    return ContinuousBatchingConfig(
        page_size=CB_PAGE_SIZE,
        num_blocks=pages + 1,
        max_batch_tokens=max(256, min(8192, sum(len(x) for x in ids) + len(ids))),
        max_requests_per_batch=len(ids),
    )
