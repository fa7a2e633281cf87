"""Grid sweeps: lists of settings, the cells they make, and bad lists refused
with the setting named; synthetic prompts of an exact token count."""

from __future__ import annotations

import pytest
from conftest import SHORT_PROMPTS

from runner.config import ConfigError, RunConfig
from runner.host.synthetic import count_tokens, planning_tokenizer, synthetic_prompts
from runner.models import resolve_model
from studio.sweeps.grid import MAX_RUNS, grid_cells, parse_axis
from studio.sweeps.plan import plan_sweep


def test_lists_become_values_in_order():
    assert parse_axis("batch_size", "1, 8,32") == [1, 8, 32]
    assert parse_axis("gpus_per_node", [2, "1"]) == [2, 1]
    assert parse_axis("dtype", "float32,bfloat16") == ["float32", "bfloat16"]
    assert parse_axis("max_new_tokens", 16) == [16]


@pytest.mark.parametrize("axis, value, words", [
    ("batch_size", "1,0,8", "batch_size: must be at least 1, got 0"),
    ("batch_size", "8,8", "batch_size: lists 8 twice"),
    ("max_new_tokens", "16,x", "max_new_tokens: 'x' is not a whole number"),
    ("gpus_per_node", "1,,2", "gpus: '' is not a whole number"),
    ("prompt_tokens", "2.5", "prompt_tokens: '2.5' is not a whole number"),
    ("dtype", "bf16", "dtype: 'bf16' is not one of"),
    ("mode", "simple,fast", "mode: 'fast' is not one of"),
])
def test_bad_lists_are_refused_with_the_setting_named(axis, value, words):
    with pytest.raises(ConfigError, match=words):
        parse_axis(axis, value)


def test_cells_are_every_combination_the_last_axis_fastest():
    cells = grid_cells({"batch_size": [1, 8], "gpus_per_node": [1, 2]})
    assert cells == [{"gpus_per_node": 1, "batch_size": 1}, {"gpus_per_node": 1, "batch_size": 8},
                     {"gpus_per_node": 2, "batch_size": 1}, {"gpus_per_node": 2, "batch_size": 8}]


def test_a_grid_plan_validates_every_cell_and_interleaves_repeats():
    base = RunConfig(prompts=SHORT_PROMPTS, max_new_tokens=4, device="cpu")
    plan = plan_sweep(base, {"gpus_per_node": [1, 2], "batch_size": [1, 4]}, repeats=2)
    assert [(p.config.gpus_per_node, p.config.batch_size) for p in plan.prepared] == [(1, 1), (1, 4), (2, 1), (2, 4)]
    assert plan.order == [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (1, 1), (2, 1), (3, 1)]
    settings = plan.settings()
    assert settings["batch_size"] is None and settings["axes"] == {"gpus_per_node": [1, 2], "batch_size": [1, 4]}


def test_a_cell_that_cannot_run_is_named_and_a_huge_grid_is_refused_with_its_count():
    base = RunConfig(prompts=SHORT_PROMPTS, max_new_tokens=4, device="cpu")
    with pytest.raises(ConfigError, match=r"max_new_tokens: .*context.*\(in the cell new tokens 4000\)"):
        plan_sweep(base, {"gpus_per_node": [1], "max_new_tokens": [4, 4000]})
    with pytest.raises(ConfigError, match=f"grid: 25 cells x 9 repeat\\(s\\) = 225 runs, more than the limit of {MAX_RUNS}"):
        plan_sweep(base, {"batch_size": [1, 2, 3, 4, 5], "max_new_tokens": [1, 2, 3, 4, 5]}, repeats=9)


def test_prompt_tokens_beyond_the_context_are_refused():
    base = RunConfig(prompts=SHORT_PROMPTS, max_new_tokens=64, device="cpu")
    context = resolve_model("tiny").context_length
    with pytest.raises(ConfigError, match=f"prompt_tokens: {context} prompt tokens \\+ 64 new tokens do not fit"):
        plan_sweep(base, {"gpus_per_node": [1], "prompt_tokens": [context]})
    with pytest.raises(ConfigError, match="num_prompts: goes with --prompt-tokens"):
        plan_sweep(base, [1], num_prompts=4)


@pytest.mark.parametrize("model", ["tiny", "arch:llama-2-7b"])
def test_synthetic_prompts_are_exactly_n_tokens_for_the_run_s_tokenizer(model):
    tok = planning_tokenizer(resolve_model(model))
    for n in (1, 7, 32, 300):
        prompts = synthetic_prompts(tok, n, 5, seed=3)
        assert all(count_tokens(tok, p) == n for p in prompts)
        assert n < 8 or len(set(prompts)) == 5  # different prompts, once they are long enough to differ
    assert synthetic_prompts(tok, 32, 3, seed=3) == synthetic_prompts(tok, 32, 3, seed=3)  # seeded


def test_synthetic_prompts_count_as_the_worker_s_tokenizer_counts():
    """The worker tokenises with transformers (AutoTokenizer over the same files)."""
    from transformers import AutoTokenizer

    from runner.paths import models_dir
    from runner.tiny import byte_tokenizer_folder

    worker_side = AutoTokenizer.from_pretrained(byte_tokenizer_folder(models_dir()))
    prompts = synthetic_prompts(planning_tokenizer(resolve_model("tiny")), 32, 8)
    assert [len(ids) for ids in worker_side(prompts)["input_ids"]] == [32] * 8


def test_synthetic_prompts_with_a_trained_bpe_tokenizer(tmp_path):
    """A tokenizer whose words are several tokens each, with a BOS its post-processor adds."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    from runner.models import ModelSpec

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["the quick brown fox jumps over the lazy dog " * 3, "time person year way day"] * 20,
                            trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "<s>"]))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok.save(str(tmp_path / "tokenizer.json"))
    spec = ModelSpec("local", "local", str(tmp_path), 2048)
    loaded = planning_tokenizer(spec)
    prompts = synthetic_prompts(loaded, 24, 4)
    assert [count_tokens(loaded, p) for p in prompts] == [24] * 4
    with pytest.raises(ConfigError, match="has no tokenizer.json"):
        planning_tokenizer(ModelSpec("other", "local", str(tmp_path / "missing"), 2048))
