"""Checks a RunConfig against this machine before anything is launched.

One function, called by every entry point through `prepare`, so the CLI, the
page and the API refuse the same things with the same words.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from runner.config import ConfigError, RunConfig
from runner.hardware import Inventory, detect
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


def prepare(config: RunConfig, inventory: Inventory | None = None) -> Prepared:
    inventory = inventory or detect()
    device = resolve_device(config, inventory)
    limit = inventory.max_processes(device)
    if config.gpus_per_node > limit:
        what = "GPUs" if device == "cuda" else "CPU processes"
        raise ConfigError(
            "gpus", f"{config.gpus_per_node} {what} asked for, this machine allows at most {limit}; lower the count"
        )
    if config.trust_remote_code and not remote_code_allowed():
        raise ConfigError(
            "trust_remote_code", "is off in this studio; only the server's --trust-remote-code start-up flag allows it"
        )
    spec = resolve_model(config.model)
    if spec.context_length:
        if config.max_new_tokens >= spec.context_length:
            raise ConfigError(
                "max_new_tokens",
                f"{config.max_new_tokens} does not fit the model's context of {spec.context_length} tokens; "
                f"use at most {spec.context_length - 1}",
            )
        if spec.kind in BYTE_TOKENIZER_KINDS:
            longest = max(len(p.encode("utf-8")) for p in config.prompts)
            if longest + config.max_new_tokens > spec.context_length:
                raise ConfigError(
                    "max_new_tokens",
                    f"the longest prompt ({longest} tokens) plus {config.max_new_tokens} new tokens exceeds the "
                    f"model's context of {spec.context_length}; shorten the prompt or lower max new tokens",
                )
    capability = inventory.min_capability() if device == "cuda" else None
    expected = tuple(inventory.expected_devices()) if device == "cuda" else ()
    return Prepared(config=config, model=spec, device=device, dtype=resolve_dtype(config, device, capability),
                    expected_devices=expected)


def remote_code_allowed() -> bool:
    return os.environ.get("STUDIO_TRUST_REMOTE_CODE") == "1"
