"""The Analysis tab shows a server sweep (issue 26): latency against offered rate
per GPU count, the knee marked, the highest rate within the SLO named."""

import threading

import pytest
from conftest import analysis_tab_page
from test_serving_cli import FakeCell

from db.serving import add_server_runs
from runner.host.serving.spec import ServerCellSpec
from studio.exchange.serving import run_rows


@pytest.mark.browser
@pytest.mark.slow
def test_the_analysis_tab_draws_a_server_sweep_with_its_knee(browser, store, tmp_path, artifacts):
    sweep = store.create_sweep({"model": "tiny", "mode": "server", "slo": "ttft=100,tpot=200"}, [1, 2], 1,
                               name="server sweep", origin="cli")
    fake = FakeCell()
    for gpus in (1, 2):
        cell = fake(ServerCellSpec(gpus=gpus, replicas=gpus, prompts=("p",)), stop=threading.Event())
        add_server_runs(store, sweep, run_rows(cell, model="tiny", max_new_tokens=32,
                                               slo={"ttft_ms": 100.0, "tpot_ms": 200.0}))
    with analysis_tab_page(browser, store, tmp_path) as (page, errors):
        page.wait_for_selector("#analysis-serving .main-svg", timeout=60000)
        page.wait_for_function("document.querySelector('#analysis-serving-text') && document.querySelector("
                               "'#analysis-serving-text').innerText.includes('knee at')", timeout=30000)
        text = page.locator("#analysis-serving-text").inner_text()
        assert "1 GPU: knee at 0.9 req/s; highest rate within the SLO 0.9 req/s" in text
        assert "2 GPUs as 2 replicas give 1.8" in text
        assert page.locator("#analysis-serving .legendtext", has_text="2 GPUs as 2 replicas").count()
        page.locator("#analysis-serving").scroll_into_view_if_needed()
        page.locator("#analysis-serving").screenshot(path=str(artifacts / "serving-analysis.png"))
        assert not errors
