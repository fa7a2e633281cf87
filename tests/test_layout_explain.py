"""The layouts in words and in the report: the trade-off at equal GPU count with the
real numbers, the all-reduce share, and the correctness gate."""

from __future__ import annotations

import json

from rowkit import layout_sweep

from db.rows import RunRow
from db.store import Store
from studio.analysis.explain import explain_layouts
from studio.analysis.layouts import layout_summary
from studio.reports.report import load_analysis, report_html, report_json

FIRST = {"prompt_index": 1, "position": 3, "reference_token": 11, "token": 12}
BELOW = {4: (0.5, {"compared": 2, "identical": 1, "differences": [FIRST]})}


def lines_of(store, **kwargs):
    sweep_id, ids = layout_sweep(store, **kwargs)
    return load_analysis(store, sweep_id), ids


def test_the_tradeoff_sentence_names_the_layouts_and_the_measured_numbers(db_path):
    analysis, _ = lines_of(Store(db_path))
    text = analysis["explanation"]
    assert ("On 4 GPUs, 4 replicas gave 3.1x the tokens/s of tp 4 (400.0 against 130.0); tp 4 cut TPOT p50 "
            "from 41 to 14 ms and TTFT p50 from 95 to 40 ms.") in text
    assert "tp 2 on tiny spends 19% of each decode step in all-reduce" in text
    assert "18% as tp 2, 20% as 2 × tp 2" in text
    assert "Correctness: all 4 run(s) compared produced the same greedy tokens as the reference run 1" in text


def test_float32_below_100_percent_is_flagged_as_worth_a_look(db_path):
    analysis, ids = lines_of(Store(db_path), below=BELOW)
    text = analysis["explanation"]
    assert "3 of 4 run(s) compared agree" in text
    assert (f"Run {ids[4]} (tp 4, float32) agreed on 50% of the prompts; the first difference is in prompt 1 "
            "at token 3 (11 in the reference, 12 here). ⚠ Greedy float32 should agree exactly") in text


def test_bfloat16_below_100_percent_is_explained_as_reduction_order_not_a_bug(db_path):
    analysis, ids = lines_of(Store(db_path), dtype="bfloat16", below=BELOW)
    line = next(line for line in analysis["explanation"].splitlines() if line.startswith(f"Run {ids[4]} "))
    assert "⚠" not in line and "changed reduction order" in line and "not a bug" in line
    assert "all-reduce sums the partial results in another order" in line  # tp 4: the all-reduce's order


def test_the_report_json_has_a_layouts_entry_and_the_html_its_table(db_path):
    store = Store(db_path)
    sweep_id, _ = layout_sweep(store, below=BELOW)
    analysis = load_analysis(store, sweep_id)
    out = json.loads(json.dumps(report_json(analysis), default=str))
    layouts = out["layouts"]
    assert layouts["varied"] and layouts["tradeoffs"][0]["throughput_ratio"] > 3
    assert [(r["gpus"], r["layout"]) for r in layouts["rows"]] == [
        (2, "2 replicas"), (4, "4 replicas"), (2, "tp 2"), (4, "2 × tp 2"), (4, "tp 4")]
    assert layouts["correctness"]["below"][0]["worth_a_look"] is True
    page = report_html(analysis)
    assert "Layouts at equal GPU count" in page and "2 × tp 2" in page and 'id="fig-layouts"' in page


def test_a_sweep_with_one_layout_and_no_agreement_says_nothing_about_layouts():
    rows = [RunRow({"id": 1, "sweep_id": 1, "status": "succeeded", "num_gpus": 1, "tokens_per_second": 10.0}),
            RunRow({"id": 2, "sweep_id": 1, "status": "succeeded", "num_gpus": 2, "tokens_per_second": 19.0})]
    assert explain_layouts(layout_summary(rows)) == []
    assert explain_layouts(None) == []


def test_one_layout_fastest_and_quickest_is_said_as_both():
    rows = [RunRow({"id": 1, "sweep_id": 1, "status": "succeeded", "num_gpus": 2, "tp_size": 1, "tokens_per_second": 100.0,
                    "tpot_ms_p50": 10.0}),
            RunRow({"id": 2, "sweep_id": 1, "status": "succeeded", "num_gpus": 2, "tp_size": 2, "tokens_per_second": 60.0,
                    "tpot_ms_p50": 12.0})]
    (line,) = explain_layouts(layout_summary(rows))
    assert line == ("On 2 GPUs, 2 replicas gave both the most tokens/s (100.0) and the lowest TPOT p50 (10 ms) "
                    "of the 2 layouts measured (2 replicas, tp 2).")


def test_a_layout_first_to_answer_but_neither_fastest_nor_quickest_per_token_is_named():
    # as measured on CPU: tp 2 splits the prefill (lower TTFT) but pays an all-reduce per decode step
    rows = [RunRow({"id": 1, "sweep_id": 1, "status": "succeeded", "num_gpus": 2, "tp_size": 1,
                    "tokens_per_second": 1473.9, "tpot_ms_p50": 7.9, "ttft_ms_p50": 202.4}),
            RunRow({"id": 2, "sweep_id": 1, "status": "succeeded", "num_gpus": 2, "tp_size": 2,
                    "tokens_per_second": 530.9, "tpot_ms_p50": 18.78, "ttft_ms_p50": 150.8})]
    (line,) = explain_layouts(layout_summary(rows))
    assert line.endswith("of the 2 layouts measured (2 replicas, tp 2); tp 2 had the lowest TTFT p50 (151 against "
                         "202 ms), at 0.36x the tokens/s.")
