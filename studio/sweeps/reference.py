"""The reference post's published figures, as read-only external sweeps.

Source: "LLM Inference on multiple GPUs with 🤗 Accelerate" (Geronimo, 27 Nov 2023).
Llama-2-7b in bfloat16, 100 prompts
(10 first lines x 10), 100 new tokens, 1-5 NVIDIA GeForce RTX 3090 at a 290 W
power cap; `split_between_processes`, the batched variant with batch size 16.
The post printed `num_tokens // timediff`, counting the padding generated after
EOS, and its timer started after the barrier and stopped after the gather.
Nothing here is measured by this studio: the numbers are copied as published.
"""

from __future__ import annotations

from db.store import Store

# the post's title has the Hugging Face emoji; written out, it renders on a projector without an emoji font
POST = "LLM Inference on multiple GPUs with (Hugging Face) Accelerate (Geronimo, 2023)"
PUBLISHED = "2023-11-27"  # the post's date: its figures are dated by it, not by when they were loaded
HARDWARE = "1-5x NVIDIA GeForce RTX 3090 (power cap 290 W)"
SOURCE_PREFIX = "reference:accelerate-post"

COMMON = {
    "model": "meta-llama/Llama-2-7b-hf",
    "max_new_tokens": 100,
    "num_prompts": 100,
    "device": "cuda",
    "dtype": "bfloat16",
    "warmup": False,
    "sort_by_length": False,
    "external": True,
    "hardware": HARDWARE,
    "post": POST,
    "token_count": "includes padding after EOS (num_tokens // seconds)",
    "published": PUBLISHED,
}

# (GPUs, tokens/s, seconds) exactly as printed in the post
SIMPLE = [(1, 44, 225.5), (2, 88, 112.9), (3, 128, 77.6), (4, 137, 72.7), (5, 119, 83.8)]
BATCHED = [(1, 520, 19.2), (2, 900, 11.1), (3, 1205, 8.2), (4, 1655, 6.0), (5, 1658, 6.0)]

REFERENCE_SWEEPS = {
    "simple": {"name": "Reference post: simple (RTX 3090, published)", "mode": "simple", "batch_size": 1,
               "figures": SIMPLE},
    "batched": {"name": "Reference post: batched, batch 16 (RTX 3090, published)", "mode": "batched",
                "batch_size": 16, "figures": BATCHED},
}


def source_of(key: str) -> str:
    return f"{SOURCE_PREFIX}:{key}"


def reference_settings(key: str) -> dict:
    spec = REFERENCE_SWEEPS[key]
    return {**COMMON, "mode": spec["mode"], "batch_size": spec["batch_size"]}


def ensure_reference_sweeps(store: Store) -> dict[str, int]:
    """Store both reference sweeps unless they are there already; returns their ids.
    Idempotent: calling it again adds nothing."""
    ids = {}
    for key, spec in REFERENCE_SWEEPS.items():
        points = [{"num_gpus": n, "tokens_per_second": float(tps), "seconds": float(secs),
                   "environment": {"gpu_names": ["NVIDIA GeForce RTX 3090"] * n, "note": HARDWARE}}
                  for n, tps, secs in spec["figures"]]
        ids[key], _ = store.add_external_sweep(reference_settings(key), points, name=spec["name"],
                                               source=source_of(key), published=PUBLISHED)
    return ids


def published_date(row: dict) -> str | None:
    """The publication date of a published figure (a run or sweep row), None for one measured here.
    Rows loaded before the date was stored carry only `external` in their config or settings."""
    details = row.get("config") or row.get("settings") or {}
    if not (row.get("external") or details.get("external")):
        return None
    return details.get("published") or PUBLISHED


def is_reference(sweep: dict) -> bool:
    return bool(sweep.get("external")) and str(sweep.get("source") or "").startswith(SOURCE_PREFIX)
