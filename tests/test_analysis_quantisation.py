"""The work-quantisation model, the diagnosis in words and the timeline check."""

import math

import pytest

from db.rows import RunRow
from studio.analysis.analyse import analyse_sweep, compare
from studio.analysis.scaling_models import quantisation, rank_rounds, suggest
from studio.sweeps.reference import BATCHED, SIMPLE


def reference_sweep(figures, mode, batch_size, sweep_id=1):
    runs = [RunRow({"id": sweep_id * 100 + n, "status": "succeeded", "num_gpus": n, "num_nodes": 1, "world_size": n,
                    "repeat_index": 0, "tokens_per_second": float(tps), "seconds": secs, "num_prompts": 100,
                    "batch_size": batch_size}) for n, tps, secs in figures]
    return {"id": sweep_id, "name": "ref", "mode": mode, "batch_size": batch_size, "num_prompts": 100,
            "settings": {"mode": mode, "batch_size": batch_size, "num_prompts": 100}, "runs": runs}


def test_rounds_on_the_busiest_rank_match_the_post():
    rows = quantisation(100, 16, [1, 2, 3, 4, 5])
    assert [r["rounds"] for r in rows] == [7, 4, 3, 2, 2]
    assert rows[2]["rounds_per_rank"] == [3, 3, 3]  # 34, 33, 33 prompts


@pytest.mark.parametrize("num_prompts,batch", [(100, 16), (37, 5), (64, 8), (10, 1), (7, 16)])
def test_ceiling_is_the_closed_form(num_prompts, batch):
    for row in quantisation(num_prompts, batch, range(1, 9)):
        n = row["gpus"]
        closed = math.ceil(num_prompts / batch) / math.ceil(math.ceil(num_prompts / n) / batch)
        assert row["ceiling_speedup"] == pytest.approx(closed)


def test_model_reproduces_the_posts_batched_figures_within_ten_percent():
    rows = quantisation(100, 16, [1, 2, 3, 4, 5])
    for row, (_, tps, secs) in zip(rows, BATCHED):
        measured_speedup = tps / BATCHED[0][1]
        assert row["ceiling_speedup"] == pytest.approx(measured_speedup, rel=0.10)
        # and the time: rounds x the 1-GPU seconds per round
        predicted_seconds = row["rounds"] * BATCHED[0][2] / rows[0]["rounds"]
        assert predicted_seconds == pytest.approx(secs, rel=0.10)


def test_batched_reference_is_diagnosed_as_quantisation():
    a = analyse_sweep(reference_sweep(BATCHED, "batched", 16))
    assert a["diagnosis"]["verdict"] == "quantisation"
    text = a["explanation"]
    assert "7, 4, 3, 2, 2 rounds" in text
    assert "1.00, 1.75, 2.33, 3.50, 3.50" in text  # predicted
    assert "1.00, 1.73, 2.32, 3.18, 3.19" in text  # measured
    assert "Going from 4 to 5 GPUs" in text
    per_round = [r["seconds_per_round"] for r in a["diagnosis"]["rows"]]
    assert max(per_round) / min(per_round) < 1.15  # about 2.75-3.0 s per round in every case


def test_simple_reference_is_diagnosed_as_contention():
    a = analyse_sweep(reference_sweep(SIMPLE, "simple", 1))
    assert a["batch_size_effective"] == 1
    assert [q["rounds"] for q in a["quantisation"]] == [100, 50, 34, 25, 20]
    assert a["diagnosis"]["verdict"] == "contention"
    assert "Cause: contention" in a["explanation"]


def test_suggestion_removes_the_quantisation():
    s = suggest(100, 16, [1, 2, 3, 4, 5])
    assert s["current"] == pytest.approx(0.7)
    for row in quantisation(100, s["batch_size"], [1, 2, 3, 4, 5], base=1):
        assert row["ceiling_efficiency"] >= 0.9
    for row in quantisation(s["num_prompts"], 16, [1, 2, 3, 4, 5], base=1):
        assert row["ceiling_efficiency"] >= 0.9
    assert f"batch size {s['batch_size']}" in s["text"]
    assert suggest(120, 2, [1, 2, 3])["batch_size"] is None  # already even


def _ranks_with_calls(calls_per_rank, seconds=1.0):
    ranks = []
    for rank, calls in enumerate(calls_per_rank):
        spans = [{"phase": "load", "start": 0.0, "end": 1.0}]
        spans += [{"phase": "generate", "start": 1.0 + i * 0.5, "end": 1.4 + i * 0.5, "batch": i, "size": 2}
                  for i in range(calls)]
        ranks.append({"rank": rank, "seconds": seconds + rank * 0.1, "timeline": spans})
    return ranks


def _tiny_sweep():
    runs = [RunRow({"id": 1, "status": "succeeded", "num_gpus": 1, "world_size": 1, "tokens_per_second": 100.0,
                    "seconds": 1.5, "num_prompts": 6, "batch_size": 2}),
            RunRow({"id": 2, "status": "succeeded", "num_gpus": 2, "world_size": 2, "tokens_per_second": 150.0,
                    "seconds": 1.0, "num_prompts": 6, "batch_size": 2})]
    return {"id": 9, "settings": {"mode": "batched", "batch_size": 2, "num_prompts": 6}, "runs": runs}


def test_timeline_check_counts_generate_spans():
    assert rank_rounds(6, 2, 2) == [2, 2]
    a = analyse_sweep(_tiny_sweep(), {1: _ranks_with_calls([3]), 2: _ranks_with_calls([2, 2])})
    assert [c["agrees"] for c in a["timeline_check"]] == [True, True]
    assert a["timeline_check"][0]["round_seconds_median"] == pytest.approx(0.4)
    assert "The stored timelines agree" in a["explanation"]
    bad = analyse_sweep(_tiny_sweep(), {1: _ranks_with_calls([3]), 2: _ranks_with_calls([3, 1])})
    assert bad["timeline_check"][1]["agrees"] is False
    assert "disagree" in bad["explanation"] and "recorded 3, 1" in bad["explanation"]


def test_failed_runs_are_left_out_and_named():
    sweep = _tiny_sweep()
    sweep["runs"].append(RunRow({"id": 3, "status": "failed", "num_gpus": 2, "world_size": None,
                                 "tokens_per_second": None, "seconds": None, "error": "boom", "num_prompts": 6}))
    a = analyse_sweep(sweep)
    assert a["runs_used"] == 2 and a["runs_left_out"][0]["id"] == 3


def test_ab_calls_a_difference_inside_the_noise_a_tie():
    def sweep(sweep_id, values_by_n):
        runs = [RunRow({"id": sweep_id * 100 + i, "status": "succeeded", "num_gpus": n, "world_size": n,
                        "tokens_per_second": v, "seconds": 1.0, "num_prompts": 8, "batch_size": 2})
                for i, (n, v) in enumerate((n, v) for n, vs in values_by_n.items() for v in vs)]
        return analyse_sweep({"id": sweep_id, "settings": {"mode": "batched", "batch_size": 2, "num_prompts": 8},
                              "runs": runs})

    a = sweep(1, {1: [100, 101, 99], 2: [180, 182, 181]})
    b = sweep(2, {1: [100.5, 99.5, 101.5], 2: [200, 201, 199]})
    result = compare(a, b)
    verdicts = {r["gpus"]: r["verdict"] for r in result["rows"]}
    assert verdicts[1].startswith("tie")
    assert verdicts[2] == "B faster"
    assert result["rows"][1]["ratio"] == pytest.approx(200 / 181)


def test_rounds_follow_the_prompts_the_runs_had_not_a_stale_sweep_setting():
    # sweeps stored before the fix say 1 prompt for 8 synthetic ones; the runs know better
    sweep = reference_sweep([(1, 100.0, 1.0)], "batched", 4)
    sweep["settings"]["num_prompts"] = sweep["num_prompts"] = 1
    for r in sweep["runs"]:
        r["num_prompts"] = 8
    analysis = analyse_sweep(sweep)
    assert analysis["quantisation"][0]["rounds"] == 2


def test_an_ab_of_two_models_on_two_machines_says_so():
    from studio.sweeps.reference import HARDWARE

    a = analyse_sweep(reference_sweep(BATCHED, "batched", 16))
    a["sweep"].update(model="tiny", external=False)
    a["device"], a["settings"]["hardware"] = "cpu", None
    b = analyse_sweep(reference_sweep(BATCHED, "batched", 16, sweep_id=2))
    b["sweep"].update(model="meta-llama/Llama-2-7b-hf", external=True)
    b["settings"]["hardware"] = HARDWARE
    caveats = compare(a, b)["caveats"]
    assert any("Different models: A is tiny, B is meta-llama/Llama-2-7b-hf" in c for c in caveats)
    assert any("Different hardware: A is cpu, B is 1-5x NVIDIA GeForce RTX 3090" in c for c in caveats)
    assert any("published figures" in c for c in caveats)
    assert compare(a, a)["caveats"] == []
