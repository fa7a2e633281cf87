"""`studio recommend` (issue 23 item 5): the cheapest GPU count, layout and batch
size that meet an SLO, at the most tokens/s per dollar; one function
(studio.analysis.recommend.recommend) answers, the CLI and the panel show it."""

from __future__ import annotations

import json

import pytest

from runner.config import ConfigError, RunConfig
from runner.result import RunResult
from studio.analysis.recommend import recommend_stored
from studio.sweeps.reference import ensure_reference_sweeps
from studio.sweeps.slo import parse_slo

# (GPUs, batch) -> tokens/s, TTFT p99 ms, TPOT p99 ms; made up for the test, stored like real runs
GRID = {(1, 2): (10.0, 50.0, 20.0), (2, 2): (19.0, 50.0, 20.0), (1, 8): (30.0, 80.0, 300.0), (2, 8): (50.0, 80.0, 150.0)}


def store_latency_grid(store) -> tuple[int, dict]:
    base = RunConfig(prompts=["p"] * 16, max_new_tokens=4)
    settings = {**base.settings(), "batch_size": None, "axes": {"gpus_per_node": [1, 2], "batch_size": [2, 8]}}
    sweep_id = store.create_sweep(settings, [1, 2], 1, name="latency grid")
    ids = {}
    for (gpus, batch), (tps, ttft, tpot) in GRID.items():
        config = RunConfig(prompts=["p"] * 16, max_new_tokens=4, gpus_per_node=gpus, batch_size=batch).to_dict()
        run_id = store.create_run(config, sweep_id=sweep_id)
        ranks = [{"rank": r, "num_prompts": 16 // gpus, "tokens": 64 // gpus, "seconds": 64 / tps} for r in range(gpus)]
        store.finish_run(run_id, RunResult(status="succeeded", config=config, world_size=gpus, device="cpu",
                                           dtype="float32", tokens=64, raw_tokens=64, seconds=64 / tps,
                                           tokens_per_second=tps, ranks=ranks,
                                           latency={"ttft_ms_p99": ttft, "tpot_ms_p99": tpot}))
        ids[(gpus, batch)] = run_id
    store.finish_sweep(sweep_id, "succeeded")
    return sweep_id, ids


def test_the_cheapest_setting_that_meets_the_slo(store):
    sweep_id, ids = store_latency_grid(store)
    # batch 8 misses TPOT 100 ms; of batch 2, 1 GPU gives 10 tokens/s per $2/hour = 5, 2 GPUs 19 / $4 = 4.75
    answer = recommend_stored(store, [sweep_id], parse_slo("ttft=100,tpot=100"), price=2.0, max_gpus=2)
    chosen = answer["chosen"]
    assert (chosen["gpus"], chosen["batch_size"], chosen["kind"]) == (1, 2, "measured")
    assert chosen["run_ids"] == [ids[(1, 2)]] and chosen["meets_slo"] is True
    assert chosen["tokens_per_second_per_dollar_hour"] == pytest.approx(5.0)
    assert chosen["usd_per_million_tokens"] == pytest.approx(2 / (10 * 3600) * 1e6)
    assert {(c["gpus"], c["batch_size"]): c["meets_slo"] for c in answer["candidates"]} == {
        (1, 2): True, (2, 2): True, (1, 8): False, (2, 8): False}
    assert answer["sentence"] == (
        f"Use 1 GPU(s) at batch 2: 10 tokens/s, $55.556 per million tokens at $2.00 per GPU-hour; meets "
        f"ttft=100 ms, tpot=100 ms (TTFT p99 50 ms, TPOT p99 20 ms); measured in run(s) {ids[(1, 2)]} of sweep "
        f"{sweep_id}.")
    # a loose SLO lets batch 8 in: 30 tokens/s per $2/hour beats 50 per $4/hour
    loose = recommend_stored(store, [sweep_id], parse_slo("ttft=1000,tpot=1000"), price=2.0, max_gpus=2)["chosen"]
    assert (loose["gpus"], loose["batch_size"]) == (1, 8)
    # TPOT 200 ms: batch 8 fits on 2 GPUs (150 ms) only, and 50/4 = 12.5 beats batch 2's 5
    mid = recommend_stored(store, [sweep_id], parse_slo("ttft=1000,tpot=200"), price=2.0, max_gpus=2)["chosen"]
    assert (mid["gpus"], mid["batch_size"], mid["layout"]) == (2, 8, "2 replicas")


def test_nothing_meets_and_no_price(store):
    sweep_id, _ = store_latency_grid(store)
    answer = recommend_stored(store, [sweep_id], parse_slo("ttft=10,tpot=10"), max_gpus=2)
    assert answer["chosen"] is None
    assert answer["sentence"].startswith("Nothing measured or predicted meets ttft=10 ms, tpot=10 ms: the closest is "
                                         "1 GPU(s) at batch 2")
    # CPU runs without --price: ranked by tokens/s per GPU, said so
    answer = recommend_stored(store, [sweep_id], parse_slo("ttft=100,tpot=100"), max_gpus=2)
    assert answer["ranked_by"] == "tokens/s per GPU" and answer["chosen"]["gpus"] == 1
    assert any("ranked by tokens/s per GPU" in n for n in answer["notes"])
    assert "no price given" in answer["sentence"]
    with pytest.raises(ConfigError, match="there is no sweep 999"):
        recommend_stored(store, [999], parse_slo("ttft=1,tpot=1"))


def test_a_published_sweep_gets_predictions_with_intervals_and_an_unchecked_slo(store):
    sweep_id = ensure_reference_sweeps(store)["batched"]
    answer = recommend_stored(store, [sweep_id], parse_slo("ttft=2000,tpot=200"), price=1.0, max_gpus=8)
    assert not answer["slo_checked"] and "could not be checked" in answer["sentence"]
    predicted = {c["gpus"]: c for c in answer["candidates"] if c["kind"] == "predicted"}
    assert sorted(predicted) == [6, 7, 8]  # the published sweep ran 1-5
    seven = predicted[7]
    assert 0 < seven["low"] < seven["tokens_per_second"] < seven["high"] and seven["run_ids"] == []
    assert len(seven["based_on"]) == 5
    # priced at the interval's slow end: never cheaper than the data allow
    assert seven["usd_per_million_tokens"] == pytest.approx(7 * 1.0 / (seven["low"] * 3600) * 1e6)
    # 1 GPU at 520 tokens/s is the most tokens/s per dollar of the published counts and of the predictions
    assert answer["chosen"]["gpus"] == 1 and answer["chosen"]["tokens_per_second_per_dollar_hour"] == 520.0
    assert any(n.startswith(f"sweep {sweep_id}, batch 16: held out") for n in answer["notes"])


def test_cli_recommend(store, db_path, capsys):
    from studio.cli.commands import main

    sweep_id, ids = store_latency_grid(store)
    assert main(["recommend", str(sweep_id), "--slo", "ttft=100,tpot=100", "--price", "2", "--max-gpus", "2",
                 "--db", str(db_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Use 1 GPU(s) at batch 2: 10 tokens/s, $55.556 per million tokens")
    assert f"→ measured  {sweep_id:>5}    1 1 GPU" in out
    assert main(["recommend", str(sweep_id), "ref:batched", "--slo", "mlperf-llama2-70b", "--json",
                 "--db", str(db_path)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert {c["sweep_id"] for c in answer["candidates"]} == {sweep_id, ensure_reference_sweeps(store)["batched"]}
    for bad, message in ((["--slo", "ttft=1"], "is not ttft=MS,tpot=MS"), (["--slo", "mlperf-llama2-70b", "--price",
                          "-1"], "is not a price"), (["--slo", "mlperf-llama2-70b", "--max-gpus", "0"], "max_gpus")):
        assert main(["recommend", str(sweep_id), *bad, "--db", str(db_path)]) != 0
        assert message in capsys.readouterr().err


def test_recommend_panel(store):
    from studio.web.recommend_panel import recommend_view

    sweep_id, ids = store_latency_grid(store)
    text = recommend_view(store, str(sweep_id), "", "ttft=100,tpot=100", "2", "2")
    assert text.startswith("### Use 1 GPU(s) at batch 2: 10 tokens/s, $55.556 per million tokens")
    assert f"| **→** | measured | {sweep_id} | 1 | 1 GPU | 2 | 10 | measured | $55.556 | 50 ms | 20 ms | yes | " \
           f"{ids[(1, 2)]} |" in text
    assert recommend_view(store, None, "", "ttft=1,tpot=1", "", "") == "Pick a sweep first."
    with pytest.raises(ConfigError, match="slo"):
        recommend_view(store, str(sweep_id), "", "", "", "")
    ref = ensure_reference_sweeps(store)["batched"]
    both = recommend_view(store, str(sweep_id), str(ref), "ttft=2000,tpot=200", "", "8")
    assert "| predicted | " in both and "from " in both


@pytest.mark.browser
@pytest.mark.slow
def test_cost_and_recommend_panels_in_chromium(store, artifacts):
    import tempfile
    from pathlib import Path

    import gradio as gr
    from conftest import find_free_port
    from playwright.sync_api import sync_playwright

    from studio.web.analysis_tab import build_analysis_tab

    ensure_reference_sweeps(store)
    with gr.Blocks() as demo:
        with gr.Tab("Runs"):
            gr.Markdown("another tab")
        build_analysis_tab(store, Path(tempfile.mkdtemp()))
    port = find_free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_role("tab", name="Analysis").click()
            page.get_by_text("Cost: $ per million tokens").click()
            # the tab opens on a sweep: the panel fills at the example price of its RTX 3090s
            page.wait_for_function("document.querySelector('#cost-text').innerText.includes('$0.25 per GPU-hour, "
                                   "RTX 3090: example price')", timeout=60000)
            page.locator("#cost-price textarea, #cost-price input").first.fill("2")
            page.locator("#cost-button").click()
            page.wait_for_function("document.querySelector('#cost-text').innerText.includes('$2.00 per GPU-hour, "
                                   "given')", timeout=60000)
            page.get_by_text("Recommend: the cheapest").click()
            page.locator("#recommend-max-gpus textarea, #recommend-max-gpus input").first.fill("8")
            page.locator("#recommend-button").click()
            page.wait_for_function("document.querySelector('#recommend-text').innerText.startsWith('Use 1 GPU(s) at "
                                   "batch 16')", timeout=60000)
            assert "predicted" in page.locator("#recommend-text").inner_text()
            page.screenshot(path=str(artifacts / "analysis-cost-recommend.png"), full_page=True)
            browser.close()
        assert not errors, errors
    finally:
        demo.close()
