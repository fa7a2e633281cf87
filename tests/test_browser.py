"""The studio in a real browser: Playwright drives Debian's Chromium against a
real `studio serve`, runs a 1- and 2-process sweep on `tiny` from the page, and
finds the chart and the runs in History. Screenshots go to $TMPDIR/scaling-studio-test-artifacts
(or STUDIO_TEST_ARTIFACTS).

This test never skips: CI installs Chromium through scripts/test.sh, and a
missing browser is a failure that says how to install it.
"""

from __future__ import annotations

import re
import urllib.request

import pytest
from live_server import live_server

PAGE_PROMPTS = "Call me Ishmael.\nThe King is dead.\nIt was a bright cold day.\nI write this sitting in the sink."

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def rows_with(table, text: str):
    """A gradio Dataframe's body rows holding `text`."""
    return table.locator("[role=row]").filter(has_text=text)


@pytest.fixture
def server(db_path, free_port, tmp_path):
    with live_server(db_path, free_port, tmp_path / "serve.log") as (url, _):
        yield url




def test_sweep_from_the_page(server, browser, artifacts):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server)
    page.wait_for_selector("#run-button", timeout=30_000)

    # A bad setting is refused next to its field and above Run, starts nothing, and the browser
    # logs no error: gradio's validator answered each refusal with an HTTP 422 (issue 24 item 8).
    logged: list[str] = []
    page.on("console", lambda message: logged.append(message.text) if message.type == "error" else None)
    page.on("response", lambda response: logged.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)
    page.locator("#prompts textarea").fill(PAGE_PROMPTS)
    page.locator("#max-new-tokens").locator("input, textarea").first.fill("0")
    page.locator("#run-button").click()
    page.locator("#max-new-tokens").get_by_text("must be at least 1, got 0").wait_for(timeout=15_000)
    page.locator("#grid-info").get_by_text("Max new tokens: must be at least 1, got 0").wait_for(timeout=5_000)
    assert "studio-invalid" in page.locator("#max-new-tokens").first.get_attribute("class")
    page.screenshot(path=str(artifacts / "browser-validation.png"), full_page=True)
    assert "Sweep" not in page.locator("#progress").inner_text()
    assert not logged, logged

    page.locator("#max-new-tokens").locator("input, textarea").first.fill("8")
    for count in ("1", "2"):
        box = page.locator("#gpu-counts").get_by_role("checkbox", name=count, exact=True)
        if not box.is_checked():
            box.check()
    page.get_by_text("4 prompt(s) from the text box").wait_for(timeout=10_000)
    page.locator("#run-button").click()

    # Progress: one bar per run, the first shown running before both succeed.
    page.locator("#progress .studio-run").first.wait_for(timeout=20_000)
    assert page.locator("#progress .studio-run").count() == 2
    page.locator("#progress .studio-run[data-status='running']").first.wait_for(timeout=60_000)
    page.screenshot(path=str(artifacts / "browser-running.png"), full_page=True)

    # The sweep belongs to the server: close the tab, open the page again, and it is still going.
    page.close()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server)
    page.locator("#progress .studio-run").nth(1).wait_for(timeout=20_000)
    assert "Sweep 1" in page.locator("#progress").inner_text()
    page.locator("#progress .studio-run[data-status='succeeded']").nth(1).wait_for(timeout=150_000)
    assert page.locator("#progress").inner_text().count("4 / 4 prompts") == 2

    # The rendered Plotly chart, with a line for the sweep (the empty placeholder has none).
    page.locator("#live-chart .js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=20_000)
    assert rows_with(page.locator("#results-table"), "succeeded").count() == 2
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts / "studio.png"), full_page=True)

    # History finds both runs.
    page.get_by_role("tab", name="History").click()
    table = page.locator("#history-table")
    rows_with(table, "succeeded").nth(1).wait_for(timeout=20_000)
    assert rows_with(table, "succeeded").count() == 2
    rows_with(table, "succeeded").first.get_by_text("succeeded").click()  # opens the newest run
    page.get_by_text(re.compile(r"Run \d+ of sweep 1")).wait_for(timeout=20_000)
    page.screenshot(path=str(artifacts / "browser-history.png"), full_page=True)

    # Export the runs shown as CSV: a download link with one row a run.
    page.get_by_role("button", name="Select the runs shown").click()
    page.get_by_role("button", name="Export CSV").click()
    link = page.locator("a[href*='.csv']").first
    link.wait_for(timeout=20_000)
    with urllib.request.urlopen(link.get_attribute("href"), timeout=10) as response:
        assert len(response.read().decode().strip().splitlines()) == 3  # header and two runs

    # Compare draws the sweep on its own charts.
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-throughput .js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=20_000)
    page.get_by_role("button", name="Download the charts as one HTML file").click()
    page.locator("a[href*='.html']").first.wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts / "browser-compare.png"), full_page=True)

    # A new page never overwrites what the user types while it loads (it used to restore the last
    # sweep's settings over it, 2 times in 4): type as soon as the box shows, then let the load finish.
    for attempt in range(4):
        fresh = browser.new_page(viewport={"width": 1400, "height": 1000})
        fresh.on("pageerror", lambda exc: errors.append(str(exc)))
        fresh.goto(server)
        box = fresh.locator("#prompts textarea")
        box.wait_for(timeout=30_000)
        typed = f"Typed at once, try {attempt}."
        box.fill(typed)
        fresh.locator("#progress .studio-run").first.wait_for(timeout=20_000)  # the load event has run
        fresh.wait_for_timeout(500)
        assert box.input_value() == typed
        assert "tiny · batched · batch 16 · 8 new tokens · 4 prompts" in fresh.locator("#progress").inner_text()
        fresh.close()
    assert not errors, errors


def test_a_grid_sweep_from_the_page_and_its_pareto_front(server, browser, artifacts):
    """GPU counts 1,2 x batch sizes 1,4 on synthetic 16-token prompts: four runs, then the
    Analysis tab shows the Pareto front and the heatmap of the sweep."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server)
    page.wait_for_selector("#run-button", timeout=30_000)
    page.locator("#batch-size").locator("input, textarea").first.fill("1,4")
    page.locator("#max-new-tokens").locator("input, textarea").first.fill("4")
    page.locator("#fixed-length input").check()
    for count in ("1", "2"):
        box = page.locator("#gpu-counts").get_by_role("checkbox", name=count, exact=True)
        if not box.is_checked():
            box.check()
    page.locator("#grid-extras").get_by_text("Synthetic prompts and latency limits").click()
    page.locator("#prompt-tokens").locator("input, textarea").first.fill("16")
    page.locator("#num-prompts input").fill("8")
    page.locator("#grid-info").get_by_text("4 run(s)").wait_for(timeout=15_000)
    # the first events of a fresh server can queue behind the page load on a busy 2-core machine
    page.get_by_text("8 synthetic prompts of 16 tokens each").wait_for(timeout=30_000)
    page.locator("#run-button").click()
    page.locator("#progress .studio-run").nth(3).wait_for(timeout=30_000)

    # A second sweep while the grid runs: the grid stays in view, the new one waits in its queue line.
    page.locator("#batch-size").locator("input, textarea").first.fill("4")
    page.locator("#gpu-counts").get_by_role("checkbox", name="2", exact=True).uncheck()
    # the line's event queues behind the running grid's polls on a busy 2-core machine (missed 15 s once)
    page.locator("#grid-info").get_by_text("1 run(s)").wait_for(timeout=30_000)
    page.locator("#run-button").click()
    page.locator("#progress").get_by_text("Waiting in the queue: sweep 2 (position 1)").wait_for(timeout=30_000)
    assert "Sweep 1" in page.locator("#progress").inner_text()
    assert "batch 1, 4 · 4 new tokens · 8 prompts" in page.locator("#progress").inner_text()
    page.screenshot(path=str(artifacts / "browser-queue.png"), full_page=True)
    # then the queued sweep takes the view, with the 8 prompts it ran (not "1 prompts")
    page.locator("#progress .studio-head", has_text=re.compile(r"^Sweep 2 ")).wait_for(timeout=240_000)
    page.locator("#progress .studio-run[data-status='succeeded']").first.wait_for(timeout=120_000)
    assert "batch 4 · 4 new tokens · 8 prompts" in page.locator("#progress").inner_text()
    assert "8 / 8 prompts" in page.locator("#progress").inner_text()
    page.get_by_role("tab", name="Analysis").click()
    page.get_by_role("button", name="Refresh list").click()
    page.locator("#analysis-sweep input").click()
    page.locator("[role=option]", has_text="#1 ").first.click()
    page.locator("#analysis-pareto .js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=60_000)
    page.locator("#analysis-heatmap .js-plotly-plot .heatmaplayer").first.wait_for(timeout=60_000)
    page.locator("#analysis-setting").wait_for(timeout=10_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts / "grid-analysis.png"), full_page=True)
    assert not errors, errors


def test_a_prompts_file_uploaded_from_the_page_runs(server, browser, artifacts, tmp_path):
    """The upload path end to end: the guard at the join takes a file gradio received from
    the page (and refuses a server path in its place: tests/test_security_http.py)."""
    prompts = tmp_path / "three.txt"
    prompts.write_text("Call me Ishmael.\nThe King is dead.\nIt was a bright cold day in April.\n")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server)
    page.wait_for_selector("#run-button", timeout=30_000)
    page.locator("#prompt-file input[type=file]").set_input_files(str(prompts))
    page.get_by_text("3 prompt(s) from the file three.txt").wait_for(timeout=20_000)
    page.locator("#max-new-tokens").locator("input, textarea").first.fill("4")
    box = page.locator("#gpu-counts").get_by_role("checkbox", name="2", exact=True)
    if box.is_checked():
        box.uncheck()
    page.locator("#run-button").click()
    page.locator("#progress .studio-run[data-status='succeeded']").first.wait_for(timeout=120_000)
    assert "3 / 3 prompts" in page.locator("#progress").inner_text()
    page.screenshot(path=str(artifacts / "browser-upload.png"), full_page=True)
    assert not errors, errors
