"""Builds the embedded `tiny` model: a few-million-parameter Llama with random
weights from a fixed seed and a byte-level tokenizer. Imports torch; only worker
processes call it.

Every token of the tokenizer decodes on its own to a printable character (the
byte-level alphabet's, with space, tab and newlines as themselves), so that a server
streaming tiny's random output sends it token by token: a byte-level decoder
turns a lone byte >= 0x80 into invalid UTF-8, which a streaming server holds back
until the end (issue 26).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

SEED = 1234
SPECIALS = ("<pad>", "<s>", "</s>")  # ids 0, 1, 2


def byte_level_tokenizer():
    """The byte-level `tokenizers.Tokenizer` of `tiny` and `arch:` models (torch-free)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {token: i for i, token in enumerate(SPECIALS)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    # No merges: every byte is one token, so lengths are predictable and no
    # training data is needed.
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.Sequence([decoders.Replace(_byte_char(byte), chr(byte)) for byte in WHITESPACE])
    return tok


WHITESPACE = (0x20, 0x09, 0x0A, 0x0D)  # the bytes decoded as themselves; the rest of ASCII already is


def _byte_char(byte: int) -> str:
    """The byte-level alphabet's printable character for `byte` (GPT-2's table: 'Ġ' for a space)."""
    from tokenizers import pre_tokenizers

    split = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    return split.pre_tokenize_str(bytes([byte]).decode("latin-1"))[0][0]


def build_byte_tokenizer():
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=byte_level_tokenizer(), bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# A plain template, so that a server's /v1/chat/completions can serve tiny too (issue 26).
CHAT_TEMPLATE = ("{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant: {% endif %}")


def tiny_config(vocab_size: int):
    from transformers import LlamaConfig

    from runner.models import TINY_CONTEXT

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=TINY_CONTEXT,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=True,
    )


def _publish(folder: Path, write) -> Path:
    """Have `write(staging)` fill a temporary sibling of `folder`, then rename it into
    place, so concurrent builders (two nodes on one machine) never see a half-written
    folder; the loser of a race keeps the winner's folder."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        write(staging)
        try:
            staging.rename(folder)
        except OSError:
            if not folder.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def ensure_tiny(folder: str | os.PathLike) -> Path:
    """Create the tiny model in `folder` unless it is already there."""
    folder = Path(folder)
    if (folder / "config.json").exists() and (folder / "tokenizer.json").exists():
        return folder
    import torch
    from transformers import LlamaForCausalLM

    def write(staging: Path) -> None:
        tokenizer = build_byte_tokenizer()
        tokenizer.save_pretrained(staging)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            model = LlamaForCausalLM(tiny_config(len(tokenizer)))
        save_model_files(model, staging)

    return _publish(folder, write)


def save_model_files(model, folder: Path) -> None:
    """What `save_pretrained` writes, written on any rank.

    transformers 5 `save_pretrained` silently writes nothing on a process whose
    torch.distributed rank is not 0, and node 1 of a multi-node run builds its
    own tiny from a rank that is not 0.
    """
    from safetensors.torch import save_file

    # the two fields save_pretrained adds to config.json
    model.config.dtype = str(model.dtype).split(".")[1]
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k not in tied}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


def byte_tokenizer_folder(cache_root: str | os.PathLike) -> Path:
    """A tokenizer-only folder, used by `arch:` models (random weights need no real vocabulary)."""
    folder = Path(cache_root) / "byte-tokenizer-v2"  # v2: tiny's decoder (runner.models.TINY_VERSION)
    if (folder / "tokenizer.json").exists():
        return folder
    return _publish(folder, lambda staging: build_byte_tokenizer().save_pretrained(staging))
