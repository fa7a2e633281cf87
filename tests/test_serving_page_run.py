"""The server scenario run from the Run tab against a real `studio serve` (issue 26):
choose Server, a load, one GPU; the page shows the cell and load under way, the loads
as they are stored, the latency-against-rate chart; Stop ends the load and the
server and leaves no process. The embedded engine is `transformers serve` on `tiny`."""

from __future__ import annotations

import time

import psutil
import pytest
from live_server import live_server
from test_serving_real import serve_available

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not serve_available(), reason="transformers serve needs openai, fastapi and uvicorn "
                                 "(bash scripts/install.sh installs them)")]

PROMPTS = "Call me Ishmael.\nThe King is dead. Long live the Queen.\nIt was a bright cold day in April."


def serve_processes() -> list[psutil.Process]:
    """`transformers serve` processes, whoever started them."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        line = process.info["cmdline"] or []
        if "serve" in line and any("transformers" in part for part in line):
            found.append(process)
    return found


def fill(page, elem_id: str, value: str) -> None:
    page.locator(f"#{elem_id}").locator("input, textarea").first.fill(value)


def choose_server_scenario(page, profile: str) -> None:
    page.locator("#scenario").get_by_text("server", exact=True).click()
    page.locator("#server-fields").wait_for(state="visible", timeout=10_000)
    page.locator("#profile").get_by_text(profile, exact=True).click()
    page.locator("#prompts textarea").fill(PROMPTS)
    fill(page, "max-new-tokens", "8")
    for count in ("1", "2"):  # one GPU: the second would start a second server
        box = page.locator("#gpu-counts").get_by_role("checkbox", name=count, exact=True)
        if box.is_checked() != (count == "1"):
            box.click()


def test_a_server_sweep_from_the_page_shows_its_load_and_stop_leaves_no_server(db_path, free_port, tmp_path, browser,
                                                                                artifacts):
    before = {p.pid for p in serve_processes()}
    with live_server(db_path, free_port, tmp_path / "serve.log") as (url, _):
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        page.wait_for_selector("#run-button", timeout=30_000)
        assert not page.locator("#server-fields").is_visible()  # the offline scenario is the default

        # The offline fields go when Server is chosen, and the grid line says what will run.
        choose_server_scenario(page, "concurrency")
        assert not page.locator("#batch-size").is_visible() and page.locator("#concurrency").is_visible()
        fill(page, "concurrency", "2")
        fill(page, "requests-per-load", "4")
        page.locator("#grid-info").get_by_text("Server scenario: 1 cell(s) (1 GPU), each 2 request(s) in flight, "
                                               "4 measured requests a load").wait_for(timeout=15_000)
        page.screenshot(path=str(artifacts / "server-form.png"), full_page=True)
        page.locator("#run-button").click()

        # The cell and its load under way, then the load stored as a run with its requests.
        page.locator("#progress .studio-server").get_by_text("starting the server").or_(
            page.locator("#progress .studio-server").get_by_text("waiting for the server's /health")).first.wait_for(
            timeout=30_000)
        page.locator("#progress .studio-run[data-status='succeeded']").get_by_text("concurrency 2").wait_for(
            timeout=240_000)
        page.locator("#progress .studio-state").get_by_text("succeeded").wait_for(timeout=60_000)
        assert "4 / 4 requests" in page.locator("#progress").inner_text()
        assert "1 load(s) stored" in page.locator("#progress").inner_text()
        load_row = page.locator("#results-table [role=row]").filter(has_text="concurrency 2")
        load_row.first.wait_for(timeout=20_000)
        assert "succeeded" in load_row.first.inner_text()
        page.locator("#live-chart .js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=20_000)
        assert "Latency against offered rate" in page.locator("#live-chart").inner_text()
        page.screenshot(path=str(artifacts / "server-finished.png"), full_page=True)
        assert not set(p.pid for p in serve_processes()) - before  # the server was stopped with its cell

        # A sweep profile stopped mid-load: the load and the server end, the sweep reads cancelled.
        page.locator("#profile").get_by_text("sweep", exact=True).click()
        fill(page, "requests-per-load", "30")
        page.locator("#grid-info").get_by_text("a sweep of loads").wait_for(timeout=15_000)
        page.locator("#run-button").click()
        page.locator("#progress .studio-server").get_by_text("load at").or_(
            page.locator("#progress .studio-server").get_by_text(" load · ")).first.wait_for(timeout=240_000)
        page.screenshot(path=str(artifacts / "server-running.png"), full_page=True)
        started = time.monotonic()
        page.locator("#stop-button").click()
        page.locator("#progress .studio-state").get_by_text("cancelled").wait_for(timeout=60_000)
        stopped_in = time.monotonic() - started
        deadline = time.monotonic() + 30
        while set(p.pid for p in serve_processes()) - before and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not set(p.pid for p in serve_processes()) - before, "a server outlived Stop"
        assert stopped_in < 30, stopped_in
        assert not errors
