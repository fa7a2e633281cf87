"""The page in Chromium at 1440 × 900: Run sweep in view on arrival; History's table fits
without scrolling sideways, an export is one click that downloads a fresh file, its link
gone once the filters change, and a delete looks destructive and says what it did."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from live_server import live_server
from rowkit import layout_sweep, store_run

from studio.sweeps.reference import ensure_reference_sweeps

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_history_fits_the_screen_and_exports_in_one_click(store, db_path, free_port, tmp_path, browser, artifacts):
    ensure_reference_sweeps(store)
    sweep_id, _ = layout_sweep(store)
    store_run(store, sweep_id, 1, None, status="failed",
              error="RuntimeError: CUDA out of memory while allocating the KV cache for batch 64; " * 3)
    with live_server(db_path, free_port, tmp_path / "serve.log") as (url, _):
        page = browser.new_page(viewport={"width": 1440, "height": 900}, accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        run = page.locator("#run-button")
        run.wait_for(timeout=30_000)
        box = run.bounding_box()
        assert box["y"] + box["height"] <= 900, f"Run sweep is below the fold: {box}"
        on_top = page.evaluate("([x, y]) => document.elementFromPoint(x, y)?.closest('#run-button') !== null",
                               [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2])
        assert on_top, "something is drawn over Run sweep"
        page.get_by_role("tab", name="History").click()
        page.locator("#history-refresh").click()
        page.locator("#history-table").get_by_text("CUDA out of memory").first.wait_for(state="attached", timeout=30_000)
        headers = page.locator("#history-table thead th").all_inner_texts()
        assert any(h.strip() == "sweep" for h in headers), headers
        # a one-word header on one line: the issue saw "GPU s" and "speedu p"
        broken = page.eval_on_selector_all("#history-table thead th", """ths => ths.filter(th => {
            const walk = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
            while (walk.nextNode()) {
                const text = walk.currentNode.textContent.trim();
                if (!text || text.includes(' ')) continue;
                const range = document.createRange(); range.selectNodeContents(walk.currentNode);
                if (new Set([...range.getClientRects()].map(r => Math.round(r.top))).size > 1) return true;
            }
            return false;
        }).map(th => th.innerText)""")
        assert not broken, f"headers broken mid-word: {broken}"
        wide = page.eval_on_selector_all(
            "#history-table *", "els => els.filter(e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX)"
                                "&& e.scrollWidth > e.clientWidth + 1)"
                                ".map(e => [e.className, e.scrollWidth, e.clientWidth])")
        page.screenshot(path=str(artifacts / "history-1440.png"))
        assert not wide, f"the table scrolls sideways: {wide}"

        link = page.locator("#history-export")

        def export_csv() -> str:
            page.get_by_role("button", name="Select the runs shown").click()
            with page.expect_download(timeout=30_000) as download:
                page.get_by_role("button", name="Export CSV").click()  # one click, no link to follow by hand
            assert download.value.suggested_filename.endswith(".csv")
            return Path(download.value.path()).read_text()

        first = export_csv()
        newer = store_run(store, sweep_id, 2, 321.0)
        page.locator("#history-refresh").click()
        link.wait_for(state="hidden", timeout=15_000)  # the old file no longer matches the table
        second = export_csv()
        assert f"\n{newer}," not in first and f"\n{newer}," in second
        assert link.is_visible()
        since = page.locator("#history-since input, #history-since textarea").first
        since.fill("2001-01-01")
        since.press("Enter")
        link.wait_for(state="hidden", timeout=15_000)
        since.fill("")
        since.press("Enter")

        page.get_by_role("button", name="Clear selection").click()
        chosen = page.get_by_label("Selected runs")
        chosen.click()
        chosen.fill(f"run {newer} ·")
        chosen.press("Enter")
        page.get_by_role("button", name="Delete selected…").click()
        confirm = page.get_by_role("button", name="Yes, delete them")
        confirm.wait_for(timeout=15_000)
        red, green, blue = [int(v) for v in re.findall(r"\d+", confirm.evaluate(
            "e => getComputedStyle(e).backgroundColor"))[:3]]
        assert red > 180 and green < 100 and blue < 100, "the destructive button is not drawn as one"
        page.screenshot(path=str(artifacts / "history-delete.png"))
        confirm.click()
        page.locator("#history-action").get_by_text("Deleted 1 run(s).").wait_for(timeout=15_000)
        box = page.locator("#history-action").get_by_text("Deleted 1 run(s).").bounding_box()
        assert 0 <= box["y"] and box["y"] + box["height"] <= 900, f"the outcome is out of view: {box}"
        assert not errors, errors
