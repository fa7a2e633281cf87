"""Which model a run uses, resolved without importing torch.

`tiny` is the embedded default (built on first use by `runner.tiny`), `arch:NAME`
is a shipped architecture with random weights, anything else is a local folder or
a hub id that must already be in the Hugging Face cache: runs never download.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from runner.config import ConfigError, check_model_id
from runner.paths import models_dir

ARCH_DIR = Path(__file__).parent / "archs"
TINY_VERSION = "tiny-v2"  # v2: a tokenizer whose every token decodes on its own (issue 26)
TINY_CONTEXT = 2048


@dataclass(frozen=True)
class ModelSpec:
    name: str  # what the user wrote
    kind: str  # tiny | arch | local | hub
    path: str  # folder loaded with from_pretrained, or the arch JSON file
    context_length: int | None

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "path": self.path, "context_length": self.context_length}


def arch_names() -> list[str]:
    return sorted(p.stem for p in ARCH_DIR.glob("*.json"))


def tiny_path() -> Path:
    return models_dir() / TINY_VERSION


def _context_of(config: dict) -> int | None:
    for key in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    text = config.get("text_config")
    return _context_of(text) if isinstance(text, dict) else None


def _read_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError("model", f"cannot read {folder / 'config.json'}: {exc}") from exc


def _allowed_dirs() -> list[Path]:
    raw = os.environ.get("STUDIO_MODEL_DIRS", "")
    return [Path(p).resolve() for p in raw.split(os.pathsep) if p.strip()]


def resolve_model(model: str) -> ModelSpec:
    model = check_model_id(model)
    if model == "tiny":
        return ModelSpec(model, "tiny", str(tiny_path()), TINY_CONTEXT)
    if model.startswith("arch:"):
        name = model[len("arch:") :]
        path = ARCH_DIR / f"{name}.json"
        if name not in arch_names():
            raise ConfigError("model", f"unknown architecture {name!r}; choose one of: {', '.join(arch_names())}")
        return ModelSpec(model, "arch", str(path), _context_of(json.loads(path.read_text())))

    folder = Path(model).expanduser()
    looks_like_path = model.startswith((".", "/", "~")) or folder.exists()
    if looks_like_path:
        folder = folder.resolve()
        allowed = _allowed_dirs()
        if allowed and not any(folder == d or d in folder.parents for d in allowed):
            raise ConfigError(
                "model",
                f"{model!r} is outside the model folders this studio allows (STUDIO_MODEL_DIRS); "
                "move the model there or ask the admin to allow its folder",
            )
        # one answer whether or not the path exists, so the message is no probe of the server's files
        if not (folder / "config.json").is_file():
            raise ConfigError("model", f"{model!r} is not a Hugging Face model folder: no config.json there; "
                              "give a folder that holds config.json and the weights")
        return ModelSpec(model, "local", str(folder), _context_of(_read_config(folder)))

    if ".." in model.split("/") or model.count("/") != 1:
        raise ConfigError(
            "model", f"{model!r} is neither 'tiny', 'arch:NAME', an existing folder nor a hub id like 'org/name'"
        )
    from huggingface_hub import constants, try_to_load_from_cache

    cached = try_to_load_from_cache(model, "config.json")
    if not isinstance(cached, str):
        raise ConfigError(
            "model",
            f"{model!r} is not in the Hugging Face cache (HF_HOME={constants.HF_HOME}) and runs are offline "
            "(HF_HUB_OFFLINE=1): download it on a machine with network access into that cache, "
            "or pass a local model folder",
        )
    folder = Path(cached).parent
    return ModelSpec(model, "hub", str(folder), _context_of(_read_config(folder)))
