"""Honest token accounting.

A batched `generate` keeps emitting pad tokens for sequences that already hit EOS
until the longest one finishes. Those positions cost compute but are not output:
a sequence's generated tokens count up to and including its first EOS. The raw
count of generated positions is kept too, so the padding waste is visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class TokenCount:
    tokens: int  # real generated tokens, through the first EOS
    raw_tokens: int  # generated positions, padding after EOS included

    @property
    def padding(self) -> int:
        return self.raw_tokens - self.tokens


def count_generated(generated: Sequence[int], eos_ids: Iterable[int]) -> TokenCount:
    """Count one sequence's new tokens (prompt already removed)."""
    eos = set(eos_ids)
    for i, token in enumerate(generated):
        if token in eos:
            return TokenCount(tokens=i + 1, raw_tokens=len(generated))
    return TokenCount(tokens=len(generated), raw_tokens=len(generated))
