"""Every generate path gives the same greedy tokens as the plain path (tiny, fp32).

Runs in-process through `runner.rank.generation.Generator`, the same object the
worker uses, so no accelerate launch is needed."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from conftest import tiny_loader  # noqa: E402

from runner.config import RunConfig  # noqa: E402

PROMPTS = ["The King is dead. Long live the Queen.", "124 was spiteful.", "Call me Ishmael.",
           "It was a bright cold day in April, and the clocks were striking thirteen."]
NEW_TOKENS = 12


@pytest.fixture(scope="module")
def tiny():
    return tiny_loader()


def run_path(tiny, batches, **settings):
    from runner.rank.generation import Generator

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


# 14 prompts in batches of 4, 4, 4, 2: two batch shapes
POOL_PROMPTS = PROMPTS + ["I write this sitting in the kitchen sink.", "The sky above the port was the color of television.",
                          "It was the best of times, it was the worst of times.", "Happy families are all alike.",
                          "In the beginning was the Word.", "All this happened, more or less.",
                          "Mother died today.", "It is a truth universally acknowledged.",
                          "Someone must have slandered Josef K.", "Stately, plump Buck Mulligan came from the stairhead."]
POOL_BATCHES = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13]]


def pool_generator(tiny, **settings):
    from runner.rank.generation import Generator

    load, tokenizer = tiny
    config = RunConfig(prompts=POOL_PROMPTS, device="cpu", max_new_tokens=NEW_TOKENS, fixed_length=True, **settings)
    longest = max(len(p.encode()) for p in POOL_PROMPTS)
    return Generator(load(), tokenizer, config, "cpu", POOL_PROMPTS, static_cache_len=longest + NEW_TOKENS)


@pytest.fixture
def counted_static_caches(monkeypatch) -> list:
    """Every StaticCache built while the test runs, whoever builds it."""
    import transformers

    made = []

    class Counted(transformers.StaticCache):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(transformers, "StaticCache", Counted)
    return made


def test_a_static_run_builds_one_cache_per_batch_shape_and_resets_it(tiny, counted_static_caches):
    generate = pool_generator(tiny, cache="static")
    pooled = [generate(batch, NEW_TOKENS).generated for batch in POOL_BATCHES]
    assert len(counted_static_caches) == 2 == generate.caches.created  # one for size 4, one for size 2
    assert sorted(c.layers[0].keys.shape[0] for c in counted_static_caches) == [2, 4]
    # a fresh cache per batch (a generator of its own each) and the dynamic cache give the same greedy tokens
    fresh = [pool_generator(tiny, cache="static")(batch, NEW_TOKENS).generated for batch in POOL_BATCHES]
    plain = pool_generator(tiny)
    assert pooled == fresh == [plain(batch, NEW_TOKENS).generated for batch in POOL_BATCHES]


def test_the_timed_batches_reuse_the_caches_the_warm_up_built(tiny, counted_static_caches):
    from runner.batching import warmup_shapes

    generate = pool_generator(tiny, cache="static")
    # the worker's warm-up of a compiled run: one batch of every size, with few tokens
    for batch in warmup_shapes(POOL_BATCHES, every_size=True):
        generate(batch, 2)
    warm = list(counted_static_caches)
    for batch in POOL_BATCHES:
        generate(batch, NEW_TOKENS)
    assert counted_static_caches == warm and len(warm) == 2  # nothing built in the timed window
    # a run's warm shapes are its own: another generator (the next run) has other caches
    width = max(len(POOL_PROMPTS[i].encode()) for i in POOL_BATCHES[0])
    assert generate.warm_shape(4, width, NEW_TOKENS) == generate.warm_shape(4, width, NEW_TOKENS)
    assert generate.warm_shape(4, width, NEW_TOKENS) != pool_generator(tiny, cache="static").warm_shape(4, width, NEW_TOKENS)
