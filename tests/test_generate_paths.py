"""Every generate path gives the same greedy tokens as the plain path (tiny, fp32).

Runs in-process through `runner.generation.Generator`, the same object the
worker uses, so no accelerate launch is needed."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from runner.config import RunConfig  # noqa: E402

PROMPTS = ["The King is dead. Long live the Queen.", "124 was spiteful.", "Call me Ishmael.",
           "It was a bright cold day in April, and the clocks were striking thirteen."]
NEW_TOKENS = 12


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from runner.models import tiny_path
    from runner.tiny import ensure_tiny

    torch.set_num_threads(1)
    folder = ensure_tiny(tiny_path())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"

    def load():
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()

    return load, tokenizer


def run_path(tiny, batches, **settings):
    from runner.generation import Generator

    load, tokenizer = tiny
    config = RunConfig(prompts=PROMPTS, device="cpu", max_new_tokens=NEW_TOKENS, **settings)
    longest = max(len(p.encode()) for p in PROMPTS)
    generate = Generator(load(), tokenizer, config, "cpu", PROMPTS, static_cache_len=longest + NEW_TOKENS)
    tokens = {}
    for batch in batches:
        out = generate(batch, NEW_TOKENS)
        assert len(out.generated) == len(batch)
        tokens.update(zip(batch, out.generated))
    return [tokens[i] for i in range(len(PROMPTS))], generate.path


@pytest.fixture(scope="module")
def plain(tiny):
    tokens, path = run_path(tiny, [[0, 1, 2, 3]])
    assert path == "plain"
    assert all(len(t) == NEW_TOKENS for t in tokens)
    return tokens


def test_sorted_batches_match_plain(tiny, plain):
    from runner.batching import make_batches

    lengths = [len(p.encode()) for p in PROMPTS]
    batches = make_batches(range(len(PROMPTS)), 2, lengths, sort_by_length=True)
    assert batches[0] == [3, 0]  # longest first
    tokens, _ = run_path(tiny, batches)
    assert tokens == plain


def test_sdpa_and_eager_match(tiny, plain):
    assert run_path(tiny, [[0, 1, 2, 3]], attention="sdpa")[0] == plain
    # eager attention goes through a different kernel; greedy picks must still agree
    assert run_path(tiny, [[0, 1, 2, 3]], attention="eager")[0] == plain


# the static cache goes to generate under the keyword this transformers expects, not a deprecated one
@pytest.mark.filterwarnings("error:.*past_key_values.*:FutureWarning")
def test_static_cache_matches_plain(tiny, plain):
    tokens, path = run_path(tiny, [[0, 1], [2, 3]], cache="static")
    assert path == "static"
    assert tokens == plain


def test_continuous_batching_matches_plain(tiny, plain):
    tokens, path = run_path(tiny, [[0, 1, 2, 3]], continuous_batching=True, fixed_length=True)
    assert path == "continuous"
    assert tokens == plain


@pytest.mark.slow
@pytest.mark.skipif(not (os.environ.get("CI") or os.environ.get("STUDIO_SLOW_TESTS") == "1"),
                    reason="torch.compile on CPU takes 1.5-3.5 min; runs in CI, or here with STUDIO_SLOW_TESTS=1")
def test_static_cache_with_torch_compile_matches_plain(tiny, plain):
    tokens, path = run_path(tiny, [[0, 1, 2, 3]], cache="static", compile=True)
    assert path == "static+compile"
    assert tokens == plain
