"""A launch's model and tokenizer, loaded once on each rank: the tiny model (built
here if missing), an `arch:` model made from its config alone, a tensor-parallel
shard, or a pretrained folder; and the token ids that end a generation."""

from __future__ import annotations

import json
from pathlib import Path

from runner.config import RunConfig
from runner.layout import Layout


def load_model_and_tokenizer(spec: dict, config: RunConfig, device: str, dtype_name: str, state, layout: Layout):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    from runner.paths import models_dir
    from runner.rank.cuda import pretrained_load_kwargs
    from runner.tiny import byte_tokenizer_folder, ensure_tiny

    # the run streams its own progress; per-rank loading bars only clutter the log tail
    transformers_logging.disable_progress_bar()
    dtype = getattr(torch, dtype_name)
    kwargs = {"dtype": dtype}
    if config.attention != "auto":
        kwargs["attn_implementation"] = config.attention
    kind, path = spec["kind"], spec["path"]
    if kind == "tiny":
        with state.local_main_process_first():
            ensure_tiny(path)
    if kind == "arch":
        if layout.tp_size > 1:  # refused before launch too: from_config takes no tensor-parallel plan
            raise ValueError("arch: models are built by from_config, which transformers does not shard; use tp 1")
        raw = json.loads(Path(path).read_text())
        model_type = raw.pop("model_type")
        raw.pop("architectures", None)
        model_config = AutoConfig.for_model(model_type, **raw)
        if config.attention != "auto":
            model_config._attn_implementation = config.attention
        with state.local_main_process_first():
            tok_folder = byte_tokenizer_folder(models_dir())
        torch.manual_seed(config.seed)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(model_config, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(tok_folder)
    elif layout.tp_size > 1:
        from runner.rank.tensor_parallel import load_sharded

        model = load_sharded(path, layout, device, trust_remote_code=config.trust_remote_code, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    else:
        placement, move = pretrained_load_kwargs(device)
        model = AutoModelForCausalLM.from_pretrained(
            path, trust_remote_code=config.trust_remote_code, **kwargs, **placement
        )
        if move:
            model = model.to(device)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = list(ids) if isinstance(ids, (list, tuple)) else ([] if ids is None else [ids])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids
