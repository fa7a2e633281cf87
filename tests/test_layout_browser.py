"""The Analysis tab on a stored layout sweep in Chromium: the layout bars, the table and
the sentences that compare the layouts. Its screenshot goes to the test artifacts
(docs/layouts-measured.png is the same tab on a measured sweep).

The sweep is hand-made rows in the store (2 and 4 GPUs as replicas and tensor-parallel
groups, bfloat16, one run below 100 % agreement): the page is under test, not a model."""

from __future__ import annotations

import pytest
from conftest import analysis_tab_page
from rowkit import layout_sweep

from db.store import Store

pytestmark = pytest.mark.browser

FIRST = {"prompt_index": 41, "position": 17, "reference_token": 3290, "token": 1169}
DETAIL = {"compared": 100, "identical": 97, "differences": [FIRST]}


def test_the_analysis_tab_compares_the_layouts_of_a_sweep(db_path, artifacts, tmp_path, browser):
    store = Store(db_path)
    sweep_id, ids = layout_sweep(store, dtype="bfloat16", below={3: (0.97, DETAIL)})
    with analysis_tab_page(browser, store, tmp_path) as (page, errors):  # opens on the newest sweep: this one
        page.wait_for_selector("#analysis-layouts .main-svg", timeout=60_000)
        page.get_by_text("Why: the reasoning, the fits and the ceilings").click()  # folded below the answer
        page.wait_for_function("document.querySelector('#analysis-explanation').innerText"
                               ".includes('4 replicas gave 3.1x the tokens/s of tp 4')", timeout=30_000)
        explanation = page.locator("#analysis-explanation").inner_text()
        bars = page.locator("#analysis-layouts .trace.bars").count()
        table = page.locator("#analysis-layout-table").inner_text()
        page.locator("#analysis-pareto .js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=30_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts / "layouts-analysis.png"), full_page=True)
    assert "tp 4 cut TPOT p50 from 41 to 14 ms" in explanation
    assert "spends 30% of each decode step in all-reduce" in explanation
    assert f"Run {ids[3]} (2 × tp 2, bfloat16) agreed on 97% of the prompts" in explanation
    assert "not a bug" in explanation
    assert bars >= 9  # 3 tp sizes x 3 panels
    assert "2 × tp 2" in table and "4 replicas" in table
    assert not errors
