"""Cost per token (issue 23 item 4): one function (studio.analysis.cost.run_cost)
turns a price per GPU-hour into $ per million output tokens and per million tokens
within the SLO; History, Compare, Analysis and the report show its numbers."""

from __future__ import annotations

import json

import pytest

from runner.config import ConfigError, RunConfig
from runner.result import RunResult
from studio.analysis.cost import EXAMPLE_NOTE, clean_table, parse_price, price_of, run_cost
from studio.sweeps.reference import ensure_reference_sweeps

SLO = {"ttft_ms": 100.0, "tpot_ms": 20.0, "name": "ttft=100 ms, tpot=20 ms"}


def test_run_cost_by_hand():
    run = {"world_size": 2, "tokens_per_second": 500.0, "seconds": 10.0}
    # 2 GPUs x $2.50 = $5 an hour; 500 tokens/s = 1.8 M tokens an hour -> $2.777... per million
    outputs = [{"tokens": 3000, "ttft_ms": 50, "tpot_ms": 10},  # meets both limits
               {"tokens": 2000, "ttft_ms": 150, "tpot_ms": 10}]  # TTFT too long: not goodput
    cost = run_cost(run, 2.50, outputs, SLO)
    assert cost["dollars_per_hour"] == 5.0
    assert cost["usd_per_million_tokens"] == pytest.approx(5 / 1.8)
    assert cost["goodput"] == pytest.approx(300.0)  # 3000 good tokens over 10 s
    assert cost["usd_per_million_good_tokens"] == pytest.approx(5 / (300 * 3600) * 1e6)
    assert cost["tokens_per_second_per_dollar_hour"] == pytest.approx(100.0)
    none = run_cost(run, None)
    assert none["usd_per_million_tokens"] is None and none["dollars_per_hour"] is None


def test_the_price_a_run_gets():
    h100 = {"device": "cuda", "environment": {"gpu_names": ["NVIDIA H100 80GB HBM3"]}}
    assert price_of(h100) == (2.50, f"H100: {EXAMPLE_NOTE}")
    assert price_of(h100, 4.0) == (4.0, "given")
    mine = clean_table([["H100", "3.10", "our contract"]])
    assert price_of(h100, None, mine) == (3.10, "H100: our contract")
    cpu = {"device": "cpu", "environment": {"gpu_names": []}}
    price, why = price_of(cpu)
    assert price is None and "CPU run is costed only at a price you give" in why
    assert price_of(cpu, 0.1)[0] == 0.1
    # the longest matching name wins: an L40S is not priced as an L4
    assert price_of({"device": "cuda", "environment": {"gpu_names": ["NVIDIA L40S"]}})[0] == 1.00


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "nan", "inf", "1e300", "٥"])
def test_a_bad_price_is_refused_by_name(bad):
    with pytest.raises(ConfigError, match="is not a price per GPU-hour"):
        parse_price(bad)
    assert parse_price("$2.50") == 2.5 and parse_price("") is None


def test_the_report_costs_the_reference_sweep_at_the_example_price(store, tmp_path):
    from studio.reports.report import load_analysis, report_html, write_report

    sweep_id = ensure_reference_sweeps(store)["batched"]
    rows = {r["gpus"]: r for r in load_analysis(store, sweep_id)["cost"]["rows"]}
    # 1 RTX 3090 at the example $0.25 an hour, 520 tokens/s as published
    assert rows[1]["usd_per_million_tokens"] == pytest.approx(0.25 / (520 * 3600) * 1e6)
    assert rows[1]["price_source"].startswith("RTX 3090: example price")
    analysis = load_analysis(store, sweep_id, price=2.0)
    one = next(p for p in analysis["points"] if p["gpus"] == 4)
    expected = 4 * 2.0 / (one["throughput"]["median"] * 3600) * 1e6
    assert analysis["cost"]["rows"][3]["usd_per_million_tokens"] == pytest.approx(expected)
    page = report_html(analysis)
    assert "<h2>Cost</h2>" in page and f"${expected:,.3f}" in page
    path, _ = write_report(store, sweep_id, "json", tmp_path / "r.json", price=2.0)
    assert json.loads(path.read_text())["cost"]["rows"][3]["usd_per_million_tokens"] == pytest.approx(expected)


def store_cpu_sweep(store, tps=(100.0, 160.0)) -> int:
    sweep_id = store.create_sweep(RunConfig(prompts=["p"] * 4, max_new_tokens=4).settings(), [1, 2], 1)
    for gpus, value in zip((1, 2), tps):
        config = RunConfig(prompts=["p"] * 4, max_new_tokens=4, gpus_per_node=gpus).to_dict()
        run_id = store.create_run(config, sweep_id=sweep_id)
        store.finish_run(run_id, RunResult(status="succeeded", config=config, world_size=gpus, device="cpu",
                                           dtype="float32", tokens=16, raw_tokens=16, seconds=16 / value,
                                           tokens_per_second=value, ranks=[]))
    store.finish_sweep(sweep_id, "succeeded")
    return sweep_id


def test_prices_kept_with_the_sweep_reach_history_compare_and_analysis(store):
    from studio.web import history, views
    from studio.web.cost_panel import cost_view, keep_prices, price_frame

    sweep_id = store_cpu_sweep(store)
    runs = store.list_runs(sweep_id=sweep_id)
    assert history.history_table(runs, store)["$ per M tokens"].isna().all()  # a CPU run: no price, no cost
    assert "Kept with sweep" in keep_prices(store, sweep_id, "3", None)
    assert store.sweep_prices(sweep_id) == {"price": 3.0, "table": []}
    assert price_frame(store, sweep_id)[0] == "3"
    table = history.history_table(store.list_runs(sweep_id=sweep_id), store).set_index("GPUs")
    assert table.loc[2, "$ per M tokens"] == pytest.approx(round(2 * 3 / (160 * 3600) * 1e6, 3))
    text = cost_view(store, sweep_id, "", None)
    assert f"${3 / (100 * 3600) * 1e6:,.3f}" in text and "Cheapest per token: 1 GPU(s)" in text
    # Compare without the store prices by the example table (a CPU run has none); with it, at the sweep's $3
    assert views.compare_table(runs)["median $ per M tokens"].isna().all()
    compared = views.compare_table(runs, store).set_index("GPUs")
    assert compared.loc[1, "median $ per M tokens"] == pytest.approx(round(3 / (100 * 3600) * 1e6, 3))
    # published figures stay read-only: the prices cost them in the view only
    ref = ensure_reference_sweeps(store)["batched"]
    assert "read-only" in keep_prices(store, ref, "1", None) and store.sweep_prices(ref) is None
    ref_runs = store.list_runs(sweep_id=ref)
    compare = views.compare_table(ref_runs).set_index("GPUs")
    assert compare.loc[1, "median $ per M tokens"] == pytest.approx(round(0.25 / (520 * 3600) * 1e6, 3))
    with pytest.raises(ConfigError, match="price of H100"):
        cost_view(store, sweep_id, "", [["H100", "-2", ""]])


def test_cli_report_price(store, db_path, tmp_path, capsys):
    from studio.cli.commands import main

    assert main(["report", "ref:batched", "--format", "json", "-o", str(tmp_path / "r.json"), "--price", "1",
                 "--db", str(db_path)]) == 0
    rows = json.loads((tmp_path / "r.json").read_text())["cost"]["rows"]
    assert rows[0]["usd_per_million_tokens"] == pytest.approx(1 / (520 * 3600) * 1e6)
    assert main(["report", "ref:batched", "--price", "free", "--db", str(db_path)]) != 0
    assert "is not a price per GPU-hour" in capsys.readouterr().err


def test_the_cost_within_the_slo_stored_with_the_sweep(store):
    from studio.reports.report import load_analysis

    slo = {"ttft_ms": 100.0, "tpot_ms": 20.0, "name": "ttft=100 ms, tpot=20 ms"}
    config = RunConfig(prompts=["p"] * 4, max_new_tokens=4).to_dict()
    sweep_id = store.create_sweep({**RunConfig(prompts=["p"] * 4, max_new_tokens=4).settings(), "slo": slo}, [1], 1)
    run_id = store.create_run(config, sweep_id=sweep_id)
    # 4 requests of 4 tokens over 2 s: 8 tokens/s; two meet both limits -> goodput 4 tokens/s
    outputs = [{"prompt_index": i, "rank": 0, "prompt": "p", "output": "o", "tokens": 4, "ttft_ms": ttft,
                "tpot_ms": tpot} for i, (ttft, tpot) in enumerate([(50, 10), (60, 15), (150, 10), (50, 30)])]
    store.finish_run(run_id, RunResult(status="succeeded", config=config, world_size=1, device="cpu",
                                       dtype="float32", tokens=16, raw_tokens=16, seconds=2.0, tokens_per_second=8.0,
                                       ranks=[{"rank": 0, "num_prompts": 4, "tokens": 16, "seconds": 2.0}],
                                       outputs=outputs))
    store.finish_sweep(sweep_id, "succeeded")
    row = load_analysis(store, sweep_id, price=3.6)["cost"]["rows"][0]
    # $3.60 an hour: 8 tokens/s = 28,800 tokens an hour -> $125 per million; 4 good tokens/s -> $250
    assert row["usd_per_million_tokens"] == pytest.approx(125.0)
    assert row["usd_per_million_good_tokens"] == pytest.approx(250.0)


def test_the_cost_goes_through_strict_json(store):
    import orjson  # what gradio's API sends with: string keys only

    from studio.reports.report import load_analysis, report_json

    analysis = load_analysis(store, ensure_reference_sweeps(store)["batched"])
    assert orjson.loads(orjson.dumps(report_json(analysis), default=str))["cost"]["runs"][0]["run_id"]
