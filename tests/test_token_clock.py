"""The latency clock reads each token's time once the whole step is done.

On CPU every eager op is synchronous, so the missing device wait of a clock read
too early cannot be shown directly. A logits processor that sleeps 50 ms stands
in for the work of a step that runs after the old clock's place (a logits
processor itself): a clock read where the token is on the host counts it in
every TTFT, TPOT and latency; the old one missed it from TTFT and from the last
step of each latency."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

from conftest import ROOT, tiny_loader  # noqa: E402

from runner.config import RunConfig  # noqa: E402
from runner.metrics import request_latencies  # noqa: E402

PROMPTS = ["The King is dead. Long live the Queen.", "124 was spiteful.", "Call me Ishmael.",
           "It was a bright cold day in April, and the clocks were striking thirteen."]
NEW_TOKENS = 4
SLEEP_S = 0.050


@pytest.fixture(scope="module")
def tiny():
    load, tokenizer = tiny_loader()
    return load(), tokenizer


class Sleep:
    """A logits processor that does nothing for 50 ms."""

    def __init__(self):
        self.calls = 0

    def __call__(self, input_ids, scores):
        self.calls += 1
        time.sleep(SLEEP_S)
        return scores


def with_sleep(model, monkeypatch) -> Sleep:
    """Every `generate` of `model` runs `Sleep` last among its logits processors."""
    from transformers import LogitsProcessorList

    sleep, generate = Sleep(), model.generate

    def sleeping_generate(*args, **kwargs):
        kwargs["logits_processor"] = LogitsProcessorList([*(kwargs.get("logits_processor") or []), sleep])
        return generate(*args, **kwargs)

    monkeypatch.setattr(model, "generate", sleeping_generate)
    return sleep


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_every_ttft_tpot_and_latency_includes_the_whole_step(tiny, monkeypatch, cache):
    from runner.rank.generation import Generator

    model, tokenizer = tiny
    config = RunConfig(prompts=PROMPTS, device="cpu", max_new_tokens=NEW_TOKENS, fixed_length=True, cache=cache)
    generate = Generator(model, tokenizer, config, "cpu", PROMPTS, static_cache_len=64)
    sleep = with_sleep(model, monkeypatch)
    requests = []
    for batch in ([0, 1], [2, 3]):
        out = generate(batch, NEW_TOKENS)
        for row, tokens in enumerate(out.generated):
            assert len(tokens) == NEW_TOKENS and len(out.token_times[row]) == NEW_TOKENS  # the prompt is no token
            requests.append(request_latencies(out.starts[row], out.starts[row], out.token_times[row], NEW_TOKENS))
    assert sleep.calls == 2 * NEW_TOKENS  # the sleep really ran once a step
    floor_ms = SLEEP_S * 1000
    for r in requests:
        assert r["ttft_ms"] >= floor_ms, r
        assert r["tpot_ms"] >= floor_ms, r
        assert r["latency_ms"] >= NEW_TOKENS * floor_ms, r


def test_the_clock_skips_the_prompt_and_notes_the_end(tiny):
    from transformers import LogitsProcessorList

    from runner.rank.token_clock import TokenClock

    model, tokenizer = tiny
    enc = tokenizer(PROMPTS[:3], return_tensors="pt", padding=True)
    clock = TokenClock()
    # a batch of 3: transformers checks no batch size for a BaseStreamer (TextStreamer alone wants 1)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=5, min_new_tokens=5, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, streamer=clock,
                             logits_processor=LogitsProcessorList())
    assert out.shape[1] - enc["input_ids"].shape[1] == len(clock.times) == 5
    assert clock.times == sorted(clock.times) and clock.ended >= clock.times[-1]


def test_importing_the_latency_module_loads_neither_torch_nor_transformers():
    # db/store.py and the web process take field names from runner.metrics
    code = "import sys, runner.metrics; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
