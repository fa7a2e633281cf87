"""One answer to "what would N GPUs give": the deck, the Analysis tab (in Chromium)
and `studio report --format json` show the same ceiling and the same prediction."""

from __future__ import annotations

import json
import re

import pytest
from conftest import analysis_tab_page, run_cli

from studio.reports.deck import deck_html
from studio.reports.report import load_analysis
from studio.sweeps.reference import ensure_reference_sweeps

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def as_text(value) -> str:
    return "–" if value is None else f"{value:.0f}"


def test_the_deck_the_tab_and_the_report_agree(db_path, store, tmp_path, browser):
    sweep_id = ensure_reference_sweeps(store)["batched"]
    out = tmp_path / "report.json"
    done = run_cli("report", str(sweep_id), "--format", "json", "-o", str(out), "--db", str(db_path))
    assert done.returncode == 0, done.stderr
    report = {r["gpus"]: (as_text(r["ceiling"]), as_text(r["predicted"])) for r in json.loads(out.read_text())["what_if_rows"]}
    assert 10 in report and report[10][0] != "–"

    deck = deck_html(load_analysis(store, sweep_id))
    # the prediction rows, not the cost step's ($ and words in its cells)
    cells = re.findall(r"<tr><td>(\d+)</td><td>[^<]*</td><td>(\d[^<$]*)</td><td>(\d[^<]*)</td>", deck)
    assert cells and {int(n): (c, p) for n, c, p in cells} == {n: report[n] for n in (6, 10)}

    with analysis_tab_page(browser, store, tmp_path) as (page, errors):
        page.locator("#analysis-throughput .main-svg").first.wait_for(timeout=60_000)  # opens on this sweep
        page.get_by_text("What if: predict GPU counts and settings not run").click()
        page.locator("#what-if-text table").wait_for(timeout=30_000)
        rows = page.eval_on_selector_all("#what-if-text tbody tr", "rows => rows.map(r => "
                                         "[...r.querySelectorAll('td')].map(td => td.innerText.trim()))")
        assert page.locator("#what-if-gpus textarea, #what-if-gpus input").first.input_value() == \
            ",".join(str(n) for n in sorted(report))
    tab = {int(r[0]): (r[2], r[3]) for r in rows}
    assert tab == report
    assert not errors
