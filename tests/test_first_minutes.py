"""The first five minutes, as a new user meets them: the Run tab's first press runs
the demo, the Analysis tab opens on the newest sweep (or says what to do), and
History shows the reference post's sweeps as published figures with the post's date."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from conftest import run_cli
from live_server import live_server

from db.store import Store
from studio.sweeps.reference import PUBLISHED, ensure_reference_sweeps
from studio.web import forms, history
from studio.web.analysis_tab import NO_SWEEP, analyse

pytestmark = pytest.mark.usefixtures("page_sees_no_gpu")


def test_the_default_form_is_a_valid_sweep_of_the_reference_prompts():
    request = forms.SweepRequest(prompts_text=forms.preset_text(), gpu_counts=[1, 2])
    assert forms.check_request(request) == {}
    assert len(forms.plan_request(request).prepared[0].config.prompts) == 100


def test_an_empty_studio_says_what_to_do_in_the_analysis_tab(store):
    assert analyse(store, None)["explanation"] == NO_SWEEP
    sweep_ids = ensure_reference_sweeps(store)
    assert analyse(store, None)["explanation"].startswith("Pick a sweep")
    assert analyse(store, str(sweep_ids["batched"]))["throughput"] is not None


def test_published_figures_carry_the_post_s_date(store):
    ensure_reference_sweeps(store)
    table = history.history_table(store.list_runs())
    assert set(table["created (UTC)"]) == {f"published {PUBLISHED}"}
    assert set(table["status"]) == {"published figure"}
    labels = [label for label, _ in history.sweep_choices(store)]
    assert all(f"published figures of {PUBLISHED}, not run here" in label for label in labels)
    assert all(s["created_at"].startswith(PUBLISHED) for s in store.list_sweeps())


@contextmanager
def page_of(db_path, port, log):
    """A fresh studio on `db_path` and a Chromium page open on it."""
    from playwright.sync_api import sync_playwright

    with live_server(db_path, port, log) as (url, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        try:
            yield page
        finally:
            browser.close()


@pytest.mark.browser
@pytest.mark.slow
def test_a_new_user_s_first_minutes_in_chromium(db_path, free_port, tmp_path, artifacts):
    with page_of(db_path, free_port, tmp_path / "serve.log") as page:
        box = page.locator("#prompts textarea")
        box.wait_for(timeout=30_000)
        assert len(box.input_value().splitlines()) == 100  # the demo is one press away
        page.get_by_text("100 prompt(s) from the text box").wait_for(timeout=10_000)
        page.get_by_role("tab", name="Analysis").click()
        page.get_by_text("No sweep yet. Run one from the").wait_for(timeout=20_000)
        assert not page.locator("#analysis-throughput").is_visible()  # no empty charts or tables
        page.screenshot(path=str(artifacts / "first-minutes-analysis.png"), full_page=True)
    done = run_cli("reference", "load", "--db", str(db_path))
    assert done.returncode == 0, done.stderr
    newest = max(s["id"] for s in Store(db_path).list_sweeps())
    with page_of(db_path, free_port, tmp_path / "serve2.log") as page:
        page.get_by_role("tab", name="Analysis").click()
        # opens on the newest sweep, analysed, without a click
        page.locator("#analysis-throughput .main-svg").first.wait_for(timeout=60_000)
        assert f"#{newest} " in page.locator("#analysis-sweep input").input_value()
        page.get_by_role("tab", name="History").click()
        page.wait_for_function("document.querySelector('#history-table').innerText.includes('published "
                               f"{PUBLISHED}')", timeout=20_000)
        page.screenshot(path=str(artifacts / "first-minutes-history.png"), full_page=True)
