"""Prompts of an exact token count, as vLLM's and GuideLLM's synthetic datasets
make them, so that prompt length is a controlled variable of a sweep.

Text is seeded words, then trimmed or padded one character at a time until the
run's own tokenizer counts exactly N tokens (special tokens it adds included:
that is what the model is fed). Uses the `tokenizers` library only (no torch),
so the web process can plan a sweep with them.
"""

from __future__ import annotations

import random
from pathlib import Path

from runner.config import ConfigError
from runner.models import ModelSpec

# Ordinary English words: every tokenizer splits them into few tokens each.
WORDS = ("the time person year way day thing man world life hand part child eye woman place work week case point "
         "government company number group problem fact be have do say get make go know take see come think look "
         "want give use find tell ask seem feel try leave call good new first last long great little own other old "
         "right big high different small large next early young important few public bad same able").split()
ATTEMPTS = 200


def planning_tokenizer(spec: ModelSpec):
    """The run's tokenizer as `tokenizers.Tokenizer`: the byte-level one of `tiny`
    and `arch:` models, or a model folder's tokenizer.json."""
    from tokenizers import Tokenizer

    if spec.kind in ("tiny", "arch"):
        from runner.tiny import byte_level_tokenizer

        return byte_level_tokenizer()
    path = Path(spec.path) / "tokenizer.json"
    if not path.is_file():
        raise ConfigError("prompt_tokens", f"{spec.name} has no tokenizer.json, so prompts of an exact token count "
                          "cannot be made for it; give prompts instead")
    return Tokenizer.from_file(str(path))


def count_tokens(tokenizer, text: str) -> int:
    return len(tokenizer.encode(text).ids)


def synthetic_prompts(tokenizer, tokens: int, count: int, seed: int = 0) -> list[str]:
    """`count` different prompts of exactly `tokens` tokens each."""
    rng = random.Random(f"{seed}:{tokens}")
    out = []
    for index in range(count):
        text = _one(tokenizer, tokens, rng, index)
        if text is None:
            raise ConfigError("prompt_tokens", f"could not make a prompt of exactly {tokens} tokens with this "
                              "tokenizer; try a neighbouring count")
        out.append(text)
    return out


def _one(tokenizer, tokens: int, rng: random.Random, index: int) -> str | None:
    words = [rng.choice(WORDS).capitalize()]
    while count_tokens(tokenizer, " ".join(words)) < tokens:
        words.append(rng.choice(WORDS))
    text = " ".join(words)
    for _ in range(ATTEMPTS):
        n = count_tokens(tokenizer, text)
        if n == tokens:
            return text
        if n > tokens:
            text = text[:-1].rstrip() or text[:-1]
        else:
            text += rng.choice("abcdefghijklmnopqrstuvwxyz")
    return None
