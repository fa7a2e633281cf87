"""Prompt sets: the reference post's preset and prompt files (.txt, .jsonl, .csv)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from runner.config import ConfigError

# The ten first lines of novels the reference post uses, ten times over.
SEED_LINES = (
    "The King is dead. Long live the Queen.",
    "Once there were four children whose names were Peter, Susan, Edmund, and Lucy.",
    "The story so far: in the beginning, the universe was created.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife.",
    "The sweat wis lashing oafay Sick Boy; he wis trembling.",
    "124 was spiteful. Full of Baby's venom.",
    "As Gregor Samsa awoke one morning from uneasy dreams he found himself transformed in his bed "
    "into a gigantic insect.",
    "I write this sitting in the kitchen sink.",
    "We were somewhere around Barstow on the edge of the desert when the drugs began to take hold.",
)

PRESETS = {"seed": SEED_LINES * 10}

MAX_FILE_BYTES = 20 * 1024 * 1024


def preset(name: str) -> list[str]:
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return list(PRESETS[name])


def parse_prompts(text: str, kind: str, source: str = "prompts") -> list[str]:
    """Prompts from file content; `kind` is txt, jsonl or csv."""
    text = text.removeprefix("\ufeff")  # a byte-order mark, as spreadsheet programs write one
    if kind == "txt":
        prompts = [line.strip() for line in text.splitlines() if line.strip()]
    elif kind == "jsonl":
        prompts = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise ConfigError("prompts", f"{source} line {number} is not JSON: {exc}") from None
            if not isinstance(item, dict) or not isinstance(item.get("prompt"), str):
                raise ConfigError("prompts", f"{source} line {number} has no text field 'prompt'")
            prompts.append(item["prompt"])
    elif kind == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "prompt" not in reader.fieldnames:
            raise ConfigError("prompts", f"{source} has no 'prompt' column; its columns are {reader.fieldnames}")
        prompts = [row["prompt"] for row in reader if (row.get("prompt") or "").strip()]
    else:
        raise ConfigError("prompts", f"{source}: unknown prompt file type {kind!r}; use .txt, .jsonl or .csv")
    if not prompts:
        raise ConfigError("prompts", f"{source} holds no prompts")
    return prompts


def load_prompts(path: str | Path) -> list[str]:
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("txt", "jsonl", "csv"):
        raise ConfigError("prompts", f"{path.name}: use a .txt (one prompt a line), .jsonl or .csv file")
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError("prompts", f"{path.name} is larger than {MAX_FILE_BYTES // 2**20} MiB")
        text = path.read_text(encoding="utf-8")
    except ConfigError:
        raise
    except UnicodeDecodeError as exc:
        # the file's name only: an upload's full path is the server's temp folder, of no use to its sender
        utf16 = " (it looks like UTF-16)" if exc.object[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise ConfigError("prompts", f"{path.name} is not UTF-8 text{utf16}: byte {exc.start} cannot be read; "
                          "save the file as UTF-8 and try again") from None
    except OSError as exc:
        raise ConfigError("prompts", f"cannot read {path}: {exc}") from None
    return parse_prompts(text, kind, source=path.name)
