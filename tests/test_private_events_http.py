"""The page's private events over raw HTTP, as a client that is not the page can send
them: a queue join by fn_index (or a named route given a private fn_index) reaches a
private event only with values the page's own components can send (issue 27, item 7)."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import find_free_port
from faultkit import assert_database_sound, store_earlier_run
from live_server import live_server

from db.store import Store

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]  # a live server


@pytest.fixture(scope="module")
def served(tmp_path_factory, studio_home):
    folder = tmp_path_factory.mktemp("private")
    db_path = folder / "studio.db"
    store = Store(db_path)
    earlier = [store_earlier_run(store), store_earlier_run(store)]  # runs 1 and 2: 1.5 must open neither
    with live_server(db_path, find_free_port(), folder / "serve.log") as (url, _proc):
        with httpx.Client(base_url=url, timeout=30) as http:
            yield http, db_path, earlier, http.get("/config").json()


def dependency(config: dict, api_name: str) -> dict:
    return next(d for d in config["dependencies"] if d.get("api_name") == api_name)


def join(http, dep, data, session="hostile-session"):
    return http.post("/gradio_api/queue/join", content=json.dumps(
        {"data": data, "fn_index": dep["id"], "trigger_id": dep["targets"][0][0], "session_hash": session,
         "event_data": None}, allow_nan=True), headers={"content-type": "application/json"})


def refusal(response) -> str:
    """The messages of a refused join: gradio's validation format, one entry per input."""
    detail = response.json()["detail"]
    return " ".join(c["message"] for c in detail if not c["is_valid"]) if isinstance(detail, list) else detail


def completed(http, session: str) -> dict:
    with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("the queue never completed the event")


HOSTILE_RUN_IDS = [1.5, float("nan"), float("inf"), 1e400, "1", [1], {"id": 1}, True]


def test_open_run_joined_with_a_hostile_run_id_is_refused_naming_the_field(served):
    http, db_path, earlier, config = served
    open_run = dependency(config, "open_run")
    for number, value in enumerate(HOSTILE_RUN_IDS):
        session = f"hostile-{number}"
        response = join(http, open_run, [value], session)
        if response.status_code == 200:  # say what the handler did with it (1.5 opened run 2)
            ran = completed(http, session)
            raise AssertionError(f"{value!r} reached open_run, which answered {str(ran['output'])[:200]}")
        assert response.status_code == 422, f"{value!r}: {response.status_code} {response.text[:300]}"
        assert refusal(response).startswith("Run id: must be a"), response.text
    # the page's own call still works: a whole run id opens that run
    session = "page-like-session"
    assert join(http, open_run, [earlier[0]["id"]], session).status_code == 200
    message = completed(http, session)
    assert message["success"], message
    assert message["output"]["data"][0] == earlier[0]["id"]
    assert_database_sound(db_path, earlier)


def test_the_wrong_number_of_values_is_refused(served):
    http, db_path, earlier, config = served
    open_run = dependency(config, "open_run")
    for data in ([], [1, 2]):
        response = join(http, open_run, data)
        assert response.status_code == 400, f"{data!r}: {response.status_code} {response.text[:300]}"
    assert_database_sound(db_path, earlier)


def test_a_private_fn_index_on_a_named_route_is_refused(served):
    """gradio dispatches /run/<name> and /api/<name> by the body's fn_index when it has one,
    so a public name with a private fn_index reached the private event."""
    http, db_path, earlier, config = served
    open_run = dependency(config, "open_run")
    for route in ("/gradio_api/run/get_run", "/gradio_api/api/get_run", "/gradio_api/run/list_sweeps/"):
        response = http.post(route, json={"data": [earlier[1]["id"]], "fn_index": open_run["id"]})
        assert response.status_code == 404, f"{route}: {response.status_code} {response.text[:300]}"
        assert "not part of the studio's API" in response.text
    # the public endpoint itself still answers
    assert http.post("/gradio_api/run/get_run", json={"data": [earlier[1]["id"]]}).status_code == 200


def test_hostile_selections_for_delete_delete_nothing(served):
    http, db_path, earlier, config = served
    delete = dependency(config, "do_delete")
    fields = len(delete["inputs"])
    for selection in ([{"id": 1}], "1", [[1]], [1.5], [float("nan")], ["1"] * 100_001):
        response = join(http, delete, [selection, selection, *([None] * (fields - 2))])
        assert response.status_code == 422, f"{str(selection)[:40]}: {response.status_code} {response.text[:300]}"
        assert refusal(response).startswith("Selected sweeps: "), response.text[:300]
    assert_database_sound(db_path, earlier)


@pytest.mark.browser
def test_browser_shows_the_refusal_of_a_fractional_run_id_under_the_field(served, browser):
    """The page's own call meets the same guard: 1.5 typed as a run id is refused where it was
    typed (it opened run 2 before), and a whole one still opens its run."""
    http, db_path, earlier, _ = served
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(str(http.base_url))
    page.get_by_role("tab", name="History").click()
    run_id = page.get_by_label("Run id")
    run_id.fill("1.5")
    run_id.press("Enter")
    page.get_by_text("Run id: must be a whole number").first.wait_for(timeout=20_000)
    assert not page.get_by_text("Run 2 —").count()
    run_id.fill(str(earlier[0]["id"]))
    run_id.press("Enter")
    page.get_by_text(f"Run {earlier[0]['id']} —").first.wait_for(timeout=20_000)
    assert not errors, errors
    assert_database_sound(db_path, earlier)


@pytest.mark.browser
def test_the_page_own_price_table_passes_the_guard(served, browser):
    """The Cost panel sends its editable price table (a Dataframe) with every click: the guard
    must let the page's own table through while it refuses a table the page could not send."""
    http, db_path, earlier, _ = served
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(str(http.base_url))
    page.get_by_role("tab", name="Analysis").click()
    page.get_by_text("Cost: $ per million tokens").click()
    page.locator("#cost-price textarea, #cost-price input").first.fill("2")
    page.locator("#cost-button").click()
    # no sweep is stored here: the answer is the panel's own, reached only past the guard
    page.wait_for_function("document.querySelector('#cost-text').innerText.includes('Pick a sweep above')",
                           timeout=30_000)
    page.locator("#cost-price textarea, #cost-price input").first.fill("-2")
    page.locator("#cost-button").click()
    page.get_by_text("is not a price per GPU-hour").first.wait_for(timeout=30_000)
    page.screenshot(path="/tmp/cost_guard.png", full_page=True)
    assert not errors, errors
    assert_database_sound(db_path, earlier)
