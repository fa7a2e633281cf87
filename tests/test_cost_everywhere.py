"""Costs appear everywhere runs are shown (issue 23): `studio runs`, `studio show`, the
side-by-side report and the deck, each through studio.analysis.cost.run_cost at the
same price resolution as the Analysis tab."""

from __future__ import annotations

import json

from runner.config import RunConfig
from runner.result import RunResult
from studio.analysis.cost import cost_table_rows, money
from studio.sweeps.reference import ensure_reference_sweeps

CPU_REASON = "no price: a CPU run is costed only at a price you give (--price)"


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


def test_studio_runs_shows_the_cost_or_why_there_is_none(store, db_path, cli):
    sweep_id = store_cpu_sweep(store)
    plain = cli("runs", "--sweep", str(sweep_id), "--db", str(db_path))
    assert plain.returncode == 0 and "$/M tok" in plain.stdout and CPU_REASON in plain.stdout
    assert "$0" not in plain.stdout
    priced = cli("runs", "--sweep", str(sweep_id), "--price", "3", "--db", str(db_path))
    assert money(2 * 3 / (160 * 3600) * 1e6, 3) in priced.stdout and CPU_REASON not in priced.stdout
    rows = json.loads(cli("runs", "--sweep", str(sweep_id), "--price", "3", "--json", "--db", str(db_path)).stdout)
    two = next(r for r in rows if r["world_size"] == 2)
    assert two["usd_per_million_tokens"] == 2 * 3 / (160 * 3600) * 1e6 and two["price_source"] == "given"
    bad = cli("runs", "--price", "free", "--db", str(db_path))
    assert bad.returncode != 0 and "--price" in bad.stderr and "is not a price per GPU-hour" in bad.stderr


def test_studio_show_gives_the_cost_or_why_there_is_none(store, db_path, cli):
    sweep_id = store_cpu_sweep(store)
    run_id = next(r["id"] for r in store.list_runs(sweep_id=sweep_id) if r["world_size"] == 1)
    assert CPU_REASON in cli("show", str(run_id), "--db", str(db_path)).stdout
    shown = cli("show", str(run_id), "--price", "2.5", "--db", str(db_path)).stdout
    assert f"{money(2.5 / (100 * 3600) * 1e6, 3)} per M output tokens at $2.50 per GPU-hour (given)" in shown
    as_json = json.loads(cli("show", str(run_id), "--price", "2.5", "--json", "--db", str(db_path)).stdout)
    assert as_json["usd_per_million_tokens"] == 2.5 / (100 * 3600) * 1e6


def test_the_side_by_side_report_costs_each_run(store, db_path, cli, tmp_path):
    from studio.reports.side_by_side import side_by_side_html

    cpu, ref = store_cpu_sweep(store), ensure_reference_sweeps(store)["batched"]
    page = side_by_side_html(store, [ref, cpu])
    assert "$ per M output tokens" in page and CPU_REASON in page
    assert money(0.25 / (520 * 3600) * 1e6, 3) in page  # 1 RTX 3090 at the example price, 520 tokens/s published
    out = tmp_path / "s.html"
    done = cli("report", str(cpu), "--compare", f"{ref},{cpu}", "--price", "3", "-o", str(out), "--db", str(db_path))
    assert done.returncode == 0 and money(3 / (100 * 3600) * 1e6, 3) in out.read_text()


def test_the_deck_has_a_cost_step(store, db_path, cli, tmp_path):
    from studio.reports.deck import deck_steps
    from studio.reports.report import load_analysis

    ref = ensure_reference_sweeps(store)["batched"]
    step = next(s for s in deck_steps(load_analysis(store, ref)) if s["id"] == "cost")
    assert "Cheapest per token" in step["html"] and "example price" in step["html"]
    out = tmp_path / "d.html"
    assert cli("present", "ref:batched", "--price", "2", "-o", str(out), "--db", str(db_path)).returncode == 0
    assert "What it costs" in out.read_text() and "$2.00" in out.read_text()


def test_deck_side_by_side_and_show_agree_with_the_analysis_cost_table(store, db_path, cli):
    from studio.reports.deck import deck_steps
    from studio.reports.report import load_analysis
    from studio.reports.side_by_side import side_by_side_html

    ref = ensure_reference_sweeps(store)["batched"]
    analysis = load_analysis(store, ref)
    row = next(r for r in cost_table_rows(analysis["cost"]) if r[0] == "4")
    figure = row[2]  # the Analysis tab's "$ per M output tokens" for 4 GPUs, one run
    run_id = next(r["id"] for r in store.list_runs(sweep_id=ref) if r["world_size"] == 4)
    assert figure.startswith("$") and figure != "$0.000"
    assert figure in next(s for s in deck_steps(analysis) if s["id"] == "cost")["html"]
    assert f"<td>{figure}</td>" in side_by_side_html(store, [ref])
    assert f"{figure} per M output tokens" in cli("show", str(run_id), "--db", str(db_path)).stdout
