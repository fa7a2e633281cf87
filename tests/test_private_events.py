"""The guard that keeps the page's private events to what the page's own components can send
(issue 27, item 7), without a server: the value checks, the page's inputs all of a kind the
guard checks, and the ASGI wrapper handing gradio the body it read. Live: test_private_events_http."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import gradio as gr
import pytest

from studio.web import http_guard
from studio.web.http_guard import AccessGuard, Refused, check_value


def refused(block, value) -> str | None:
    try:
        check_value(block, value)
    except Refused as why:
        return str(why)
    return None


RUN_ID = gr.Number(None, label="Run id", precision=0)
CASES = [
    (RUN_ID, 3, None), (RUN_ID, 3.0, None), (RUN_ID, None, None),
    (RUN_ID, 1.5, "Run id: must be a whole number below 2**53, not 1.5"),
    (RUN_ID, float("nan"), "Run id: must be a finite number"),
    (RUN_ID, float("inf"), "Run id: must be a finite number"), (RUN_ID, "1", "Run id: must be a number, not str"),
    (RUN_ID, True, "Run id: must be a number, not bool"), (RUN_ID, [1], "Run id: must be a number, not list"),
    (RUN_ID, 1e300, "Run id: must be a whole number below 2**53, not 1e+300"),
    (gr.Number(label="Rate"), 1.5, None),
    (gr.Number(label="Rate", minimum=0), -1, "Rate: must be at least 0, not -1"),
    (gr.Slider(1, 64, step=1, label="batch size"), 8, None),
    (gr.Slider(1, 64, step=1, label="batch size"), 2.5, "batch size: must be a whole number below 2**53, not 2.5"),
    (gr.Slider(1, 64, step=1, label="batch size"), 65, "batch size: must be between 1 and 64, not 65"),
    (gr.Checkbox(label="Fixed length"), False, None),
    (gr.Checkbox(label="Fixed length"), "false", "Fixed length: must be true or false"),
    (gr.Textbox(label="Prompts"), "one\ntwo", None),
    (gr.Textbox(label="Prompts"), {"a": 1}, "Prompts: must be text, not dict"),
    (gr.Radio(["batched", "serving"], label="Mode"), "serving", None),
    (gr.Radio(["batched", "serving"], label="Mode"), "rm -rf", "Mode: 'rm -rf' is not one of the choices offered"),
    (gr.CheckboxGroup([1, 2, 4], label="GPUs"), [1, 4], None),
    (gr.CheckboxGroup([1, 2, 4], label="GPUs"), [3], "GPUs: 3 is not one of the choices offered"),
    (gr.CheckboxGroup([1, 2, 4], label="GPUs"), 1, "GPUs: must be a list of choices, not int"),
    (gr.Dropdown([1, 2], multiselect=True, label="Sweeps"), [2], None),
    (gr.Dropdown([1, 2], multiselect=True, label="Sweeps"), [1.5], "Sweeps: 1.5 is not one of the choices offered"),
    (gr.Dropdown([1, 2], multiselect=True, label="Sweeps"), [[1]], "Sweeps: [1] is not one of the choices offered"),
    (gr.Dropdown([1, 2], multiselect=True, label="Sweeps"), [1] * 10_001, "Sweeps: more than 10000 values"),
    (gr.Dropdown(["any"], allow_custom_value=True, label="Model"), "my/own-model", None),
    (gr.Dropdown(["any"], allow_custom_value=True, label="Model"), {"x": 1}, "Model: must be text or a number, not dict"),
    (gr.File(label="Result files"), {"path": "/tmp/gradio/abc/x.json", "meta": {"_type": "gradio.FileData"}}, None),
    (gr.File(label="Result files"), "/etc/passwd", "Result files: must be a file uploaded from the page"),
    (gr.State(), {"anything": "the server keeps it"}, None),
    (gr.Dataframe(label="Prices"), {"headers": ["gpu", "price"], "data": [["H100", 2.5], ["L4", None]], "metadata": None},
     None),
    (gr.Dataframe(label="Prices"), [["H100", 2.5]], "Prices: must be a table with headers and rows, as the page sends it"),
    (gr.Dataframe(label="Prices"), {"headers": ["gpu"], "data": ["H100"]}, "Prices: every row must be a list of cells"),
    (gr.Dataframe(label="Prices"), {"headers": ["gpu"], "data": [[{"nested": 1}]]}, "Prices: must be text or a number, not dict"),
    (gr.Dataframe(label="Prices"), {"headers": ["gpu"], "data": [[1]] * 10_001},
     "Prices: more than 10000 cells; keep one row per GPU model"),
]


@pytest.mark.parametrize(("block", "value", "words"), CASES, ids=[f"{type(c[0]).__name__}-{str(c[1])[:20]}" for c in CASES])
def test_a_value_the_page_could_not_send_is_refused_naming_the_field(block, value, words):
    assert refused(block, value) == words


def test_every_private_input_of_the_page_is_a_kind_the_guard_checks(db_path):
    from studio.sweeps.supervisor import Supervisor
    from studio.web.app import build_app

    supervisor = Supervisor(str(db_path))
    try:
        app = build_app(supervisor, str(db_path))
    finally:
        supervisor.shutdown()
    kinds = {type(b).__name__ for fn in app.fns.values() if fn.api_visibility != "public" for b in fn.inputs}
    assert kinds <= set(http_guard.CHECKED_KINDS), f"add a check for {kinds - set(http_guard.CHECKED_KINDS)}"


def fake_server():
    """A scope["app"] with one private event (Run id) and one public one, as gradio's App has them."""
    with gr.Blocks() as demo:
        run_id = gr.Number(label="Run id", precision=0)
        shown = gr.Textbox()
        run_id.submit(lambda r: r, run_id, shown, api_visibility="private")

        def get_run(run_id: int) -> int:
            return run_id

        gr.api(get_run, api_name="get_run")
    return SimpleNamespace(get_blocks=lambda: demo, state_holder=SimpleNamespace(session_data={})), demo


def call(path: str, body: bytes, chunk: int = 1 << 20) -> tuple[int | None, bytes, bytes | None]:
    """(status sent by the guard or None, its body, the body gradio was handed or None)."""
    server, _ = fake_server()
    chunks = [body[i:i + chunk] for i in range(0, len(body), chunk)] or [b""]
    incoming = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent, handed = [], []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def gradio(scope, receive, send):
        parts = []
        while True:
            message = await receive()
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        handed.append(b"".join(parts))

    scope = {"type": "http", "method": "POST", "path": path, "app": server, "headers": []}
    asyncio.run(AccessGuard(gradio)(scope, receive, send))
    status = sent[0]["status"] if sent else None
    return status, b"".join(m.get("body", b"") for m in sent[1:]), (handed[0] if handed else None)


def join_body(fn_index: int, data: list) -> bytes:
    return json.dumps({"data": data, "fn_index": fn_index, "session_hash": "s", "trigger_id": 1}).encode()


def test_the_guard_refuses_a_hostile_join_before_gradio_and_hands_on_a_good_one_whole():
    _, demo = fake_server()
    private = next(i for i, fn in demo.fns.items() if fn.api_visibility == "private")
    status, answer, handed = call("/gradio_api/queue/join", join_body(private, [1.5]))
    assert (status, handed) == (422, None)
    assert json.loads(answer)["detail"][0]["message"] == "Run id: must be a whole number below 2**53, not 1.5"
    good = join_body(private, [7]) + b" " * 3000  # read in several chunks, handed on whole
    assert call("/gradio_api/queue/join", good, chunk=1000) == (None, b"", good)


def test_a_named_route_with_a_private_fn_index_is_refused_and_the_public_one_passes():
    _, demo = fake_server()
    private = next(i for i, fn in demo.fns.items() if fn.api_visibility == "private")
    public = next(i for i, fn in demo.fns.items() if fn.api_visibility == "public")
    status, answer, handed = call("/gradio_api/run/get_run", join_body(private, [2]))
    assert (status, handed) == (404, None) and b"not part of the studio's API" in answer
    body = join_body(public, [2])
    assert call("/gradio_api/run/get_run", body) == (None, b"", body)
    assert call("/gradio_api/queue/join", b"not json") == (None, b"", b"not json")  # gradio answers it


def test_an_oversize_body_is_refused(monkeypatch):
    monkeypatch.setattr(http_guard, "MAX_BODY", 5000)
    status, _, handed = call("/gradio_api/queue/join", b"x" * 6000, chunk=1000)
    assert (status, handed) == (413, None)
