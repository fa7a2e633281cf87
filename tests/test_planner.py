"""The auto planner: rounds, balance and memory on known inputs (torch-free)."""

from __future__ import annotations

import math

import pytest

from runner.host.prompts import preset
from runner.planner import (
    ModelShape,
    describe_plan,
    even_batches,
    make_plan,
    max_batch_for_memory,
    memory_budget_bytes,
    model_shape,
    shape_from_config,
    token_lengths,
)

GiB = 2**30
POST = preset("seed")
POST_LENGTHS = [len(p.encode()) for p in POST]
TINY = ModelShape(params=3_230_720, bytes_per_param=4, layers=4, hidden=256, intermediate=688, kv_heads=4,
                  head_dim=64, vocab=259, heads=4)


def plan(world_size, budget=8 * GiB, lengths=POST_LENGTHS, new=100, **kw):
    return make_plan(lengths, max_new_tokens=new, world_size=world_size, shape=TINY, budget_bytes=budget, **kw)


def flatten(assignment):
    return sorted(i for rank in assignment for batch in rank for i in batch)


@pytest.mark.parametrize("gpus", [1, 2, 3, 4, 5])
def test_post_workload_fits_one_round_per_rank_when_memory_allows(gpus):
    p = plan(gpus)
    assert p["rounds"] == 1
    assert p["batch_size"] == math.ceil(100 / gpus)
    assert flatten(p["assignment"]) == list(range(100))  # every prompt once
    assert max(p["prompt_counts"]) - min(p["prompt_counts"]) <= 1
    # estimated tokens balanced within 3 % of the mean on every rank count
    est = p["estimated_tokens"]
    assert max(est) / (sum(est) / gpus) < 1.03


@pytest.mark.parametrize("gpus, rounds", [(1, 7), (2, 4), (3, 3), (4, 2), (5, 2)])
def test_memory_bound_batch_gives_the_fewest_rounds_and_even_batches(gpus, rounds):
    # a budget that fits exactly 16 sequences of the longest prompt + 100 tokens
    per_seq = (117 + 100) * TINY.kv_bytes_per_token + 117 * TINY.prefill_bytes_per_token()
    budget = int((TINY.weight_bytes + 16.5 * per_seq) / 0.8)
    p = plan(gpus, budget=budget)
    assert p["max_batch_by_memory"] == 16
    assert p["rounds"] == rounds == math.ceil(math.ceil(100 / gpus) / 16)
    for rank in p["assignment"]:
        sizes = [len(b) for b in rank]
        assert len(rank) <= rounds
        assert max(sizes) <= 16 and max(sizes) - min(sizes) <= 1  # no straggler round of 4 prompts


def test_tokens_not_counts_are_balanced():
    # one very long prompt and many short ones: the long one's rank takes fewer prompts
    lengths = [1000] + [10] * 99
    p = plan(2, lengths=lengths, new=10)
    heavy = next(r for r, rank in enumerate(p["assignment"]) if any(0 in b for b in rank))
    assert p["prompt_counts"][heavy] < p["prompt_counts"][1 - heavy]
    est = p["estimated_tokens"]
    assert max(est) / min(est) < 1.05


def test_batches_inside_a_rank_are_sorted_longest_first():
    lengths = [5, 50, 20, 40, 10, 30]
    batches = even_batches(range(6), lengths, 4)
    assert [len(b) for b in batches] == [3, 3]
    assert batches == [[1, 3, 5], [2, 4, 0]]


def test_sorting_reduces_padding_when_there_are_several_rounds():
    lengths = [32 + (i * 37) % 992 for i in range(64)]
    budget_for_16 = int((TINY.weight_bytes + 16.5 * ((1024 + 32) * TINY.kv_bytes_per_token
                                                     + 1024 * TINY.prefill_bytes_per_token())) / 0.8)
    p = plan(1, budget=budget_for_16, lengths=lengths, new=32)
    assert p["padded_positions"] < p["padded_positions_unsorted"] / 2


def test_a_model_that_does_not_fit_is_refused_with_the_numbers():
    with pytest.raises(ValueError, match="raise the budget"):
        plan(1, budget=TINY.weight_bytes)
    assert max_batch_for_memory(TINY, TINY.weight_bytes // 2, 100, 100) == 0


def test_warmup_covers_every_shape_only_when_compiling():
    lengths = [100] * 20 + [50] * 20
    budget_for_16 = int((TINY.weight_bytes + 16.5 * ((100 + 8) * TINY.kv_bytes_per_token
                                                     + 100 * TINY.prefill_bytes_per_token())) / 0.8)
    eager = plan(1, budget=budget_for_16, lengths=lengths, new=8)
    compiled = plan(1, budget=budget_for_16, lengths=lengths, new=8, every_shape_warmup=True)
    assert len(eager["warmup_batches"]) == 1 and len(eager["warmup_batches"][0]) == 1
    # the compiled decode step's shape is the batch size: one warm-up batch per size
    sizes = {len(b) for b in compiled["assignment"][0]}
    warmed = [len(b) for b in compiled["warmup_batches"][0]]
    assert sorted(warmed) == sorted(sizes) and len(sizes) > 1


def test_parameter_counts_match_the_published_sizes():
    from runner.models import resolve_model

    assert abs(model_shape(resolve_model("arch:llama-2-7b").to_dict(), "bfloat16").params - 6.74e9) < 0.01e9
    assert abs(model_shape(resolve_model("arch:llama-3.2-1b").to_dict(), "bfloat16").params - 1.236e9) < 0.01e9
    shape = shape_from_config({"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4,
                               "num_attention_heads": 4, "vocab_size": 259, "tie_word_embeddings": True}, "float32")
    assert shape.params == TINY.params and shape.kv_bytes_per_token == 2 * 4 * 256 * 4


def test_byte_lengths_for_byte_tokenizer_models():
    lengths, source = token_lengths(["abc", "é"], {"kind": "arch", "path": "x"})
    assert lengths == [3, 2] and "byte" in source


def test_describe_plan_explains_the_choice():
    text = describe_plan(plan(2))
    assert "batch size 50" in text and "1 round" in text and "balances estimated tokens" in text
    assert "No plan" in describe_plan(None)


def test_the_gpu_budget_comes_from_free_memory_not_total():
    budget, source = memory_budget_bytes(None, "cuda", 2, gpu_memory_mib=(81920, 81920), gpu_free_mib=(81000, 30000))
    assert budget == int(30000 * 2**20 * 0.9) and "free" in source and "least free" in source
    # free unknown (an inventory without it): total, and the sentence says so
    budget, source = memory_budget_bytes(None, "cuda", 1, gpu_memory_mib=(40960,), gpu_free_mib=(None,))
    assert budget == int(40960 * 2**20 * 0.9) and "free memory unknown" in source
    assert memory_budget_bytes(2.0, "cuda", 1, (40960,), (100,))[0] == 2 * GiB


def test_eager_attention_counts_its_quadratic_scores():
    lengths = [2000] * 8
    sdpa = max_batch_for_memory(TINY, GiB, 2000, 100, attention="sdpa")
    eager = max_batch_for_memory(TINY, GiB, 2000, 100, attention="eager")
    assert eager < sdpa
    # 4 heads x 2000^2 positions x (4 bytes of fp32 scores + 4 for the softmax copy)
    assert TINY.attention_workspace_bytes("eager", 2000) == 4 * 2000 * 2000 * 8
    assert TINY.attention_workspace_bytes("sdpa", 2000) == 0
    p = plan(1, budget=GiB, lengths=lengths, attention="eager")
    budget = p["memory"]["budget"]
    assert budget["attention"] == "eager" and budget["per_sequence_bytes"]["attention_workspace"] == 4 * 2000**2 * 8
    assert budget["bytes"] == GiB and budget["fill"] == 0.8 and budget["weights_bytes"] == TINY.weight_bytes
    assert "eager attention scores" in " ".join(p["reasons"])


@pytest.mark.slow
def test_an_auto_run_stores_its_plan_phases_and_bandwidth(db_path, prompts, tmp_path):
    """End to end on 2 CPU processes: the planner's batches are the ones run."""
    from conftest import run_cli

    from db.store import Store
    from runner.phases import breakdown

    source = tmp_path / "p.txt"
    source.write_text("\n".join(prompts))
    proc = run_cli("run", "--mode", "auto", "--gpus", "2", "--device", "cpu", "--max-new-tokens", "4",
                   "--prompts", str(source), "--db", str(db_path), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    store = Store(db_path)
    run = store.get_run(store.list_runs()[0]["id"])
    plan = run["plan"]
    assert plan["rounds"] == 1 and plan["prompt_counts"] == [3, 3]
    # each rank ran exactly its planned prompts, and outputs come back in prompt order
    for rank in run["ranks"]:
        assert rank["num_prompts"] == sum(len(b) for b in plan["assignment"][rank["rank"]])
    by_rank = {o["prompt_index"]: o["rank"] for o in run["outputs"]}
    for r, batches in enumerate(plan["assignment"]):
        assert all(by_rank[i] == r for b in batches for i in b)
    assert [o["prompt_index"] for o in run["outputs"]] == list(range(len(prompts)))
    assert run["bandwidth_gbps"] > 0 and 0 < run["bandwidth_utilisation"] < 1
    assert run["roofline"]["bytes"] > 0 and len(run["roofline"]["per_rank"]) == 2
    # the split the roofline used is stored: weights plus the dynamic cache's 3 x traffic of 8,192-byte positions
    assert run["roofline_cache"] == "dynamic"
    assert run["roofline_weight_bytes"] + run["roofline_kv_bytes"] == run["roofline"]["bytes"]
    assert run["roofline_kv_bytes"] > 0 and run["roofline_kv_bytes"] % (3 * 2 * 4 * 4 * 64 * 4) == 0
    assert {"launch", "imports", "load", "warmup", "generate", "gather", "total", "store"} <= set(run["phases"])
    assert breakdown(run["phases"])["generation"] == run["phases"]["generate"]
    # a CPU run: no energy counter, said so; host memory in its own column, no device figures
    assert run["energy_joules"] is None and run["joules_per_token"] is None
    assert "CPU run" in run["energy_note"]
    assert all(r["host_rss_peak_bytes"] > 0 and r["device_allocated_peak_bytes"] is None for r in run["ranks"])
    assert "measured copy, not a data-sheet peak" in run["roofline"]["peak_source"]


# Llama-2-7B's config, written out: the numbers below are worked from it by hand.
LLAMA_7B = {"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
            "tie_word_embeddings": False}


def test_left_padding_under_sdpa_counts_the_prefills_attention_mask():
    from runner.planner import per_sequence_bytes

    shape = shape_from_config(LLAMA_7B, "bfloat16")
    # a bool [B, 1, L, L] mask: at batch 64 and 4096 positions, 64 x 4096 x 4096 bytes = 1 GiB
    padded = per_sequence_bytes(shape, 4096, 100, "sdpa", padded=True)["attention_mask"]
    assert padded == 4096 * 4096 and 64 * padded == GiB
    # rows of one length under dynamic cache: SDPA's is_causal, no mask
    assert per_sequence_bytes(shape, 4096, 100, "sdpa", padded=False)["attention_mask"] == 0
    # a static cache's keys are the whole buffer, prompt + new tokens long, padded or not
    assert per_sequence_bytes(shape, 4096, 100, "sdpa", "static", padded=False)["attention_mask"] == 4096 * 4196
    # eager makes a bfloat16 mask from the bool one: 1 + 2 bytes an element
    assert per_sequence_bytes(shape, 4096, 100, "eager", padded=False)["attention_mask"] == 4096 * 4096 * 3
    # the plan holds it against the budget: the tiny fp32 model, 8 GiB, 4096-token prompts, 100 new tokens
    kv = 2 * 4 * 4 * 64 * 4  # 8,192 bytes a position
    prefill = (4 * 256 + 3 * 688) * 4  # 12,352 bytes a prompt position
    free = 8 * GiB * 0.8 - 3_230_720 * 4
    even = plan(1, lengths=[4096] * 64)
    ragged = plan(1, lengths=[4096] * 63 + [4000])
    assert even["max_batch_by_memory"] == int(free // (4196 * kv + 4096 * prefill)) == 80
    assert ragged["max_batch_by_memory"] == int(free // (4196 * kv + 4096 * prefill + 4096 * 4096)) == 67
    assert ragged["memory"]["budget"]["per_sequence_bytes"]["attention_mask"] == 4096 * 4096
    assert "attention mask" in " ".join(ragged["reasons"])


def test_tensor_parallel_keeps_the_embeddings_whole_on_every_rank():
    from runner.layout import layout_memory_bytes

    shape = shape_from_config(LLAMA_7B, "bfloat16")
    assert shape.params == 6_738_415_616
    # Llama's tp plan splits the projections and the lm_head; embed_tokens and the norms stay whole
    replicated = 32000 * 4096 + 32 * 2 * 4096 + 4096
    assert shape.replicated_params == replicated == 131_338_240
    half = shape.per_rank(2)
    assert half.params == 131_338_240 + (6_738_415_616 - 131_338_240) // 2 == 3_434_876_928
    assert half.kv_heads == 16 and shape.per_rank(1) is shape
    # the validator's per-GPU need: replicated bytes whole, the rest split
    weights, whole = shape.weight_bytes, replicated * 2
    assert layout_memory_bytes(weights, 0, 100, 1, 2, whole) == whole + (weights - whole) // 2
    assert layout_memory_bytes(weights, 0, 100, 1, 2, whole) - weights // 2 == whole // 2  # 125 MiB more a rank


def test_the_plan_says_what_its_estimate_leaves_out():
    p = plan(1)
    text = " ".join(p["reasons"])
    assert "NCCL" in text and "safetensors" in text and "host RSS" in text
    assert any("NCCL" in item for item in p["memory"]["budget"]["left_out"])
