"""`studio report` on a real repeated sweep of tiny (1 and 2 CPU processes), in
both formats, and the HTML's charts rendering in Chromium with no network."""

import json
import re

import pytest
from conftest import SHORT_PROMPTS, run_cli

from db.store import Store
from studio.charts.analysis import timeline_spans
from studio.reports.report import load_analysis, representative_runs


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One real sweep shared by this module: 2 counts x 2 repeats, 6 prompts, batch 2."""
    folder = tmp_path_factory.mktemp("report")
    prompts = folder / "prompts.txt"
    prompts.write_text("\n".join(SHORT_PROMPTS) + "\n")
    db = folder / "studio.db"
    done = run_cli("run", "--gpus", "1,2", "--device", "cpu", "--repeats", "2", "--max-new-tokens", "8", "--batch-size", "2",
                   "--prompts", str(prompts), "--name", "report test", "--db", str(db), "--json", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout)
    return {"db": db, "folder": folder, "runs": runs, "sweep_id": runs[0]["sweep_id"]}


@pytest.mark.slow
def test_run_json_carries_sweep_and_repeat(swept):
    runs = swept["runs"]
    assert len(runs) == 4 and {r["sweep_id"] for r in runs} == {swept["sweep_id"]}
    assert sorted((r["num_gpus"], r["repeat_index"]) for r in runs) == [(1, 0), (1, 1), (2, 0), (2, 1)]


@pytest.mark.slow
def test_json_report_has_the_figures(swept):
    out = swept["folder"] / "report.json"
    done = run_cli("report", str(swept["sweep_id"]), "--format", "json", "--output", str(out),
                   "--db", str(swept["db"]), timeout=120)
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["sweep"]["id"] == swept["sweep_id"] and data["counts"] == [1, 2]
    for point in data["points"]:
        assert point["throughput"]["n"] == 2
        tp = point["throughput"]
        assert tp["ci_low"] is not None and tp["ci_high"] >= tp["median"]
    assert data["points"][0]["speedup"] == 1.0
    assert data["points"][1]["efficiency"] == pytest.approx(data["points"][1]["speedup"] / 2)
    assert data["fits"]["amdahl"]["lam"] > 0 and "at least 3" in data["fits"]["usl"]["note"]
    # 6 prompts, batch 2: 3 rounds on one process; 3 prompts each -> 2 rounds on two
    assert [q["rounds_per_rank"] for q in data["quantisation"]] == [[3], [2, 2]]
    assert data["quantisation"][1]["ceiling_speedup"] == pytest.approx(1.5)
    assert all(c["agrees"] and c["runs_checked"] == 2 for c in data["timeline_check"])
    assert data["diagnosis"]["verdict"] in ("quantisation", "contention", "both", "near-linear")
    assert "3, 2 rounds" in data["explanation"] and "The stored timelines agree" in data["explanation"]


@pytest.mark.slow
def test_html_report_is_self_contained(swept):
    out = swept["folder"] / "report.html"
    done = run_cli("report", str(swept["sweep_id"]), "--output", str(out), "--db", str(swept["db"]), timeout=120)
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert page.count("window.PlotlyConfig") == 1  # plotly.js inlined once
    assert not re.search(r"<script[^>]+src=", page)
    for name in ("throughput", "speedup", "efficiency", "timeline"):
        assert f'id="fig-{name}"' in page
    assert "What limits the scaling" in page and "Environment" in page
    # the CLI prints the explanation too, the same words the report carries
    assert "3, 2 rounds (generate calls)" in done.stdout and f"wrote {out}" in done.stdout


def test_report_of_a_missing_sweep_says_what_exists(db_path, cli):
    done = cli("report", "42", "--db", str(db_path))
    assert done.returncode == 2 and "there is no sweep 42" in done.stderr
    bad = cli("report", "ref:nope", "--db", str(db_path))
    assert bad.returncode == 2 and "ref:batched" in bad.stderr


def test_reference_report_json(db_path, tmp_path, cli):
    out = tmp_path / "ref.json"
    done = cli("report", "ref:batched", "--format", "json", "-o", str(out), "--compare", "ref:simple",
                   "--db", str(db_path))
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["sweep"]["external"] == 1 and data["diagnosis"]["verdict"] == "quantisation"
    assert [round(q["ceiling_speedup"], 2) for q in data["quantisation"]] == [1.0, 1.75, 2.33, 3.5, 3.5]
    assert [r["verdict"] for r in data["ab"]["rows"]] == ["no test (needs 2+ repeats on a side)"] * 5


@pytest.mark.slow
@pytest.mark.browser
def test_report_charts_render_offline_in_chromium(swept, artifacts):
    from playwright.sync_api import sync_playwright

    out = swept["folder"] / "browser.html"
    assert run_cli("report", str(swept["sweep_id"]), "-o", str(out), "--db", str(swept["db"]),
                   timeout=120).returncode == 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors, remote = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else (remote.append(route.request.url), route.abort()))
        page.goto(out.as_uri())
        for name in ("throughput", "speedup", "efficiency", "timeline"):
            page.wait_for_selector(f"#fig-{name} .main-svg", timeout=30000)
        # the Gantt draws every stored span: one bar per phase and per generate call
        bars = page.locator("#fig-timeline .trace.bars .point").count()
        page.screenshot(path=str(artifacts / "analysis-report.png"), full_page=True)
        browser.close()
    assert not errors and not remote
    store = Store(swept["db"])
    analysis = load_analysis(store, swept["sweep_id"])
    expected = sum(len(timeline_spans(run, ranks)) for run, ranks in representative_runs(analysis))
    generate_calls = 3 + 2 + 2  # one process: 3 batches of 2; two processes: 2 batches each
    assert bars == expected and expected >= generate_calls
