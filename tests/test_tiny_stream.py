"""tiny's tokenizer lets a server stream its random output token by token (issue 26):
every token decodes on its own to printable text, while prompts still count one
token per UTF-8 byte."""

from __future__ import annotations

from tokenizers.decoders import DecodeStream

from runner.tiny import SPECIALS, byte_level_tokenizer


def test_every_token_decodes_on_its_own_to_printable_text():
    tok = byte_level_tokenizer()
    for token_id in range(len(SPECIALS), tok.get_vocab_size()):
        text = tok.decode([token_id])
        assert len(text) == 1 and "\ufffd" not in text, (token_id, text)
        assert text.isprintable() or text in " \t\n\r", (token_id, text)


def test_a_decode_stream_yields_text_at_every_token():
    """What `transformers serve` does with each generated token: None would mean held back."""
    tok = byte_level_tokenizer()
    stream = DecodeStream([], skip_special_tokens=True)
    high_bytes = tok.encode("naïve café ÿ").ids  # bytes >= 0x80, each alone invalid UTF-8
    pieces = [stream.step(tok, token_id) for token_id in high_bytes]
    assert None not in pieces and len(pieces) == len("naïve café ÿ".encode())


def test_ascii_round_trips_and_prompts_count_bytes():
    tok = byte_level_tokenizer()
    text = "Call me Ishmael.\n\tSome years ago\r"
    assert tok.decode(tok.encode(text).ids) == text
    assert len(tok.encode("naïve").ids) == len("naïve".encode())


def test_the_built_model_folder_has_the_streaming_tokenizer():
    from transformers import AutoTokenizer

    from runner.models import tiny_path
    from runner.tiny import ensure_tiny

    tokenizer = AutoTokenizer.from_pretrained(ensure_tiny(tiny_path()))
    lone_high_byte = tokenizer.encode("ÿ", add_special_tokens=False)[:1]
    assert tokenizer.decode(lone_high_byte) == byte_level_tokenizer().decode(lone_high_byte) != "\ufffd"
