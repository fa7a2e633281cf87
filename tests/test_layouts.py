"""studio.analysis.layouts: naming a layout, reading the stored agreement, and comparing
layouts at equal GPU count, on rows made by hand."""

from __future__ import annotations

import pytest

from db.rows import RunRow
from studio.analysis.layouts import (
    agreement_cells,
    agreement_text,
    correctness,
    first_differences,
    layout_name,
    layout_rows,
    layout_summary,
    tradeoffs,
)
from studio.analysis.stats import SETTING_AXES, scaling_series


def run(i, gpus, tp, tps, *, ttft=None, tpot=None, comm=None, agreement=None, reference=None, dtype="float32",
        sample=False, detail=None, sweep=1, **extra):
    return RunRow({"id": i, "sweep_id": sweep, "status": "succeeded", "num_gpus": gpus, "num_nodes": 1, "tp_size": tp,
                   "dp_size": gpus // tp, "tokens_per_second": tps, "seconds": 1.0, "ttft_ms_p50": ttft,
                   "tpot_ms_p50": tpot, "comm_fraction": comm, "agreement": agreement, "agreement_reference": reference,
                   "agreement_detail": detail, "dtype": dtype, "config": {"do_sample": sample}, **extra})


@pytest.mark.parametrize("gpus, tp, name", [(1, 1, "1 GPU"), (4, 1, "4 replicas"), (4, 2, "2 × tp 2"),
                                            (4, 4, "tp 4"), (8, 2, "4 × tp 2"), (2, None, "2 replicas")])
def test_a_layout_is_named_for_people(gpus, tp, name):
    assert layout_name(gpus, tp) == name


def test_a_tp_that_does_not_divide_the_gpus_is_no_layout():
    with pytest.raises(ValueError, match="tp 3 does not divide 4 GPU"):
        layout_name(4, 3)


def test_a_stored_row_that_is_no_layout_is_named_by_its_numbers():
    assert RunRow({"num_gpus": 1, "tp_size": 2})["layout"] == "1 GPU(s) at tp 2"


def test_older_rows_ran_tp_1_and_hold_no_dp():
    old = RunRow({"id": 1, "num_gpus": 4, "num_nodes": 2})
    assert (old["tp_size"], old["dp_size"]) == (1, 8)
    assert RunRow({"num_gpus": 4, "num_nodes": 1, "tp_size": 2, "dp_size": None})["dp_size"] == 2


def test_tp_is_a_setting_axis_so_a_layout_sweep_has_a_series_per_tp():
    assert "tp_size" in SETTING_AXES
    rows = [run(1, 2, 1, 200.0), run(2, 2, 2, 120.0), run(3, 4, 1, 400.0), run(4, 4, 2, 230.0)]
    series = scaling_series(rows)
    assert [(s.setting["tp_size"], [p.x for p in s.points]) for s in series] == [(1, [2, 4]), (2, [2, 4])]
    # a row from before layouts (no tp_size) is tp 1: one series with the new tp 1 rows
    old = RunRow({k: v for k, v in run(5, 1, 1, 100.0).items() if k != "tp_size"})
    assert [len(s.points) for s in scaling_series([rows[0], old])] == [2]


@pytest.mark.parametrize("row, refs, text", [
    (run(2, 2, 2, 1.0, agreement=1.0), set(), "100 %"),
    (run(2, 2, 2, 1.0, agreement=0.97), set(), "97 % ⚠"),  # greedy float32: worth a look
    (run(2, 2, 2, 1.0, agreement=0.975, dtype="bfloat16"), set(), "97.5 % (bfloat16)"),
    (run(2, 2, 2, 1.0, agreement=0.5, sample=True), set(), "50 % (sampled)"),
    (run(1, 2, 1, 1.0), {1}, "reference"),
    (run(3, 2, 1, 1.0), {1}, "–"),
])
def test_agreement_cells_say_how_much_agreed_and_flag_float32(row, refs, text):
    assert agreement_text(row, row["id"] in refs) == text


def test_the_reference_is_found_from_the_other_runs():
    rows = [run(1, 2, 1, 1.0), run(2, 2, 2, 1.0, agreement=1.0, reference=1), run(3, 1, 1, 1.0, sweep=None)]
    assert agreement_cells(rows) == {1: "reference", 2: "100 %", 3: "–"}


def test_first_differences_read_the_stored_json_text():
    detail = ('{"compared": 3, "identical": 1, "differences": [{"prompt_index": 0, "position": 7, '
              '"reference_token": 11, "token": 12}, {"prompt_index": 2, "position": 0, "reference_token": 5, '
              '"token": 9}]}')
    row = run(2, 2, 2, 1.0, agreement=1 / 3, detail=detail)
    assert first_differences(row) == ["prompt 0: first differs at token 7 (reference 11, this run 12)",
                                      "prompt 2: first differs at token 0 (reference 5, this run 9)"]
    assert first_differences(row, limit=1) == first_differences(row)[:1]
    assert first_differences(run(3, 2, 2, 1.0, detail="not json")) == []


LAYOUT = [run(1, 4, 1, 380.0, ttft=90.0, tpot=40.0), run(2, 4, 1, 420.0, ttft=100.0, tpot=42.0),
          run(3, 4, 2, 230.0, ttft=62.0, tpot=23.0, comm=0.2), run(4, 4, 4, 130.0, ttft=40.0, tpot=14.0, comm=0.3),
          run(5, 2, 1, 200.0, ttft=88.0, tpot=39.0), run(6, 2, 2, 120.0, ttft=60.0, tpot=24.0, comm=0.1)]


def test_layout_rows_are_medians_over_the_repeats():
    rows = {(r["gpus"], r["tp"]): r for r in layout_rows(LAYOUT)}
    assert rows[(4, 1)]["tokens_per_second"] == 400.0 and rows[(4, 1)]["runs"] == 2
    assert rows[(4, 1)]["tpot_ms_p50"] == 41.0 and rows[(4, 1)]["ttft_ms_p50"] == 95.0
    assert rows[(4, 2)]["layout"] == "2 × tp 2" and rows[(4, 2)]["dp"] == 2
    assert rows[(4, 4)]["comm_fraction"] == 0.3 and rows[(4, 1)]["comm_fraction"] is None


def test_the_tradeoff_is_at_the_largest_count_with_two_layouts():
    (t,) = tradeoffs(layout_rows(LAYOUT))
    assert t["gpus"] == 4 and t["best_throughput"] == "4 replicas" and t["lowest_tpot"] == "tp 4"
    assert t["throughput_ratio"] == pytest.approx(400 / 130)
    assert t["tpot_ms_p50"] == {"from": 41.0, "to": 14.0} and t["ttft_ms_p50"] == {"from": 95.0, "to": 40.0}
    # 8 GPUs as one layout only: the comparison stays at 4
    assert tradeoffs(layout_rows(LAYOUT + [run(7, 8, 1, 700.0)]))[0]["gpus"] == 4


def test_without_latency_the_tradeoff_compares_most_with_fewest_tokens_per_second():
    rows = [run(1, 4, 1, 400.0), run(2, 4, 2, 300.0), run(3, 4, 4, 100.0)]
    (t,) = tradeoffs(layout_rows(rows))
    assert t["lowest_tpot"] is None and t["compared_with"] == "tp 4" and t["throughput_ratio"] == 4.0
    assert t["tpot_ms_p50"] is None


def test_one_layout_best_at_both_is_said_to_be_the_same():
    (t,) = tradeoffs(layout_rows([run(1, 2, 1, 100.0, tpot=10.0), run(2, 2, 2, 90.0, tpot=12.0)]))
    assert t["same"] and t["throughput_ratio"] == 1.0


def test_comm_share_per_tp_is_the_median_over_its_runs():
    comm = layout_summary(LAYOUT)["comm"]
    assert [(c["tp"], c["runs"], c["comm_fraction"]) for c in comm] == [(2, 2, pytest.approx(0.15)), (4, 1, 0.3)]
    assert [(p["layout"], p["comm_fraction"]) for p in comm[0]["per_count"]] == [("tp 2", 0.1), ("2 × tp 2", 0.2)]


def test_the_gate_names_the_runs_below_100_percent_and_which_are_worth_a_look():
    first = {"prompt_index": 1, "position": 3, "reference_token": 11, "token": 12}
    rows = [run(1, 2, 1, 1.0), run(2, 2, 2, 1.0, agreement=1.0, reference=1),
            run(3, 4, 4, 1.0, agreement=0.5, reference=1, detail={"compared": 2, "identical": 1,
                                                                    "differences": [first]}),
            run(4, 4, 2, 1.0, agreement=0.9, reference=1, dtype="bfloat16")]
    gate = correctness(rows)
    assert (gate["compared"], gate["agree"], gate["references"]) == (3, 1, [1])
    assert [(b["run_id"], b["worth_a_look"]) for b in gate["below"]] == [(3, True), (4, False)]
    assert gate["below"][0]["first_difference"] == first and gate["below"][0]["layout"] == "tp 4"


def test_a_plain_gpu_sweep_has_no_layouts_to_compare_but_still_a_gate():
    rows = [run(1, 1, 1, 100.0), run(2, 2, 1, 190.0, agreement=1.0, reference=1)]
    summary = layout_summary(rows)
    assert not summary["varied"] and summary["tradeoffs"] == [] and summary["comm"] == []
    assert summary["correctness"]["compared"] == 1
