"""What the web server answers when gradio refuses a file path a client sent, and
the requests it answers itself before gradio sees them (AccessGuard).

Gradio refuses a path outside its upload folder (the database, a model cache)
before any handler runs, and its 400 says why by listing every blocked server
folder. This ASGI middleware, given to the FastAPI app through
`launch(app_kwargs=...)`, replaces such an answer with one that names no folder.
"""

from __future__ import annotations

import json
import math
import re
from http.cookies import CookieError, SimpleCookie
from pathlib import Path

REFUSED_FILE = ("prompt_file: this file is not allowed: upload a .txt, .jsonl or .csv file from your computer "
                "(a path on the server is never read)")
GRADIO_PATH_REFUSAL = (b"Cannot move ", b"to the gradio cache dir")


def redact_refusal(status: int, body: bytes) -> bytes | None:
    """The answer to send instead, or None to keep `body`."""
    if status < 400 or not all(marker in body for marker in GRADIO_PATH_REFUSAL):
        return None
    return json.dumps({"detail": REFUSED_FILE}).encode()


class PathRefusalGuard:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        held: list[dict] = []  # an error answer is held back until its body is complete

        async def guarded_send(message):
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held.append(message)
                return
            if held and message["type"] == "http.response.body":
                held.append(message)
                if message.get("more_body"):
                    return
                start, *parts = held
                body = b"".join(p.get("body", b"") for p in parts)
                body = redact_refusal(start["status"], body) or body
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                held.clear()
                return
            await send(message)

        await self.app(scope, receive, guarded_send)


# POST /gradio_api/call/<name> (and the older /run, /api and /call/v2 forms) reaches any
# event that has a name, the page's private ones included: only the public API may.
NAMED_CALL = re.compile(r"^/gradio_api/(?:call/v2|call|run|api)/([^/]+)")
HEARTBEAT = "/gradio_api/heartbeat/"


def public_names(app) -> set[str]:
    blocks = app.get_blocks()
    return {fn.api_name for fn in blocks.fns.values() if fn.api_visibility == "public" and fn.api_name}


def logged_in(app, headers: list) -> bool:
    cookies = SimpleCookie()
    for key, value in headers:
        if key.lower() == b"cookie":
            try:
                cookies.load(value.decode("latin-1"))
            except CookieError:
                return False
    for name in (f"access-token-{app.cookie_id}", f"access-token-unsecure-{app.cookie_id}"):
        if name in cookies and app.tokens.get(cookies[name].value) is not None:
            return True
    return False


def access_refusal(scope) -> tuple[int, str] | None:
    """(status, message) to answer instead of letting gradio handle the request."""
    app, path = scope.get("app"), scope.get("path", "")
    if app is None or not hasattr(app, "get_blocks"):
        return None
    # gradio's heartbeat skips the login check and holds the connection open for anyone
    if path.startswith(HEARTBEAT) and getattr(app, "auth", None) and not logged_in(app, scope.get("headers", [])):
        return 401, "Not authenticated: log in first"
    match = NAMED_CALL.match(path)
    if match and match.group(1) not in public_names(app):
        return 404, (f"{match.group(1)!r} is not part of the studio's API; "
                     "the endpoints are listed at /gradio_api/info")
    return None


# --- the page's private events --------------------------------------------------------------------
#
# gradio cannot tell the page's own calls from anyone else's: the page joins the queue with a
# session hash it makes up itself, the fn_index and trigger_id it reads from the public /config,
# and no token, cookie or flag; gradio's own check of api_visibility="private" is in its Python
# and JS clients, not in the server. So a private event is reached only with values the page's
# components can send, checked here before gradio dispatches anything. /run/<name> and
# /api/<name> dispatch by the body's fn_index when it has one, whatever the name says: there a
# private fn_index is refused outright (the page never uses those routes for queued events).
QUEUE_JOIN = "/gradio_api/queue/join"
INDEXED_CALL = re.compile(r"^/gradio_api/(?:run|api)/[^/]+/?$")
MAX_BODY = 64 * 2**20  # the page's largest call is a pasted prompt list; uploads go to /upload
MAX_CHOSEN = 10_000  # values in one multiselect
MAX_TEXT = 16 * 2**20
MAX_WHOLE = 2**53  # a whole number a float holds exactly (and SQLite's integers hold)
MAX_TABLE_CELLS = 10_000  # the page's only editable table (prices per GPU model) has a dozen rows


class Refused(Exception):
    pass


def _number(label: str, value, *, whole: bool = False, low=None, high=None):
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Refused(f"{label}: must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise Refused(f"{label}: must be a finite number")
    if whole and (value != int(value) or abs(value) > MAX_WHOLE):
        raise Refused(f"{label}: must be a whole number below 2**53, not {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"between {low} and {high}" if None not in (low, high) else (
            f"at least {low}" if high is None else f"at most {high}")
        raise Refused(f"{label}: must be {span}, not {value!r}")


def _choice(label: str, value, choices: set) -> None:
    if isinstance(value, bool | list | dict) or value not in choices:
        shown = value if not isinstance(value, str) else repr(value[:80])
        raise Refused(f"{label}: {shown} is not one of the choices offered")


def _scalar(label: str, value) -> None:
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise Refused(f"{label}: longer than {MAX_TEXT} characters")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _number(label, value)
    else:
        raise Refused(f"{label}: must be text or a number, not {type(value).__name__}")


def _many(label: str, value) -> list:
    if not isinstance(value, list):
        raise Refused(f"{label}: must be a list of choices, not {type(value).__name__}")
    if len(value) > MAX_CHOSEN:
        raise Refused(f"{label}: more than {MAX_CHOSEN} values")
    return value


# the kinds of input check_value knows; tests/test_private_events.py holds the page to them
CHECKED_KINDS = ("Checkbox", "Slider", "Number", "Textbox", "Radio", "CheckboxGroup", "Dropdown", "File", "State",
                 "Dataframe")


def check_value(block, value) -> None:
    """Refused(why) unless `value` is one the page's `block` itself could send."""
    import gradio as gr  # the guard is imported with the server, after gradio

    label = getattr(block, "label", None) or type(block).__name__
    if value is None or getattr(block, "stateful", False):  # a State's value is the server's own
        return
    choices = {v for _, v in getattr(block, "choices", None) or [] if not isinstance(v, list | dict)}
    if isinstance(block, gr.Checkbox):
        if not isinstance(value, bool):
            raise Refused(f"{label}: must be true or false")
    elif isinstance(block, gr.Slider):
        _number(label, value, whole=float(block.step).is_integer() and float(block.minimum).is_integer(),
                low=block.minimum, high=block.maximum)
    elif isinstance(block, gr.Number):
        _number(label, value, whole=block.precision == 0, low=block.minimum, high=block.maximum)
    elif isinstance(block, gr.Textbox):
        if not isinstance(value, str):
            raise Refused(f"{label}: must be text, not {type(value).__name__}")
        if len(value) > MAX_TEXT:
            raise Refused(f"{label}: longer than {MAX_TEXT} characters")
    elif isinstance(block, gr.Radio):
        _choice(label, value, choices)
    elif isinstance(block, gr.CheckboxGroup):
        for one in _many(label, value):
            _choice(label, one, choices)
    elif isinstance(block, gr.Dropdown):
        check = (lambda one: _scalar(label, one)) if block.allow_custom_value else (
            lambda one: _choice(label, one, choices))
        for one in (_many(label, value) if block.multiselect else [value]):
            check(one)
    elif isinstance(block, gr.File):
        files = value if isinstance(value, list) else [value]
        if not all(isinstance(one, dict) and isinstance(one.get("path"), str) for one in files):
            raise Refused(f"{label}: must be a file uploaded from the page")
        # only a file gradio received from an upload: a server path in its place is refused here, at the
        # join, naming no folder (gradio itself would refuse it later, in the event, as a bare error)
        uploads = Path(gr.utils.get_upload_folder()).resolve()
        if not all(Path(one["path"]).resolve().is_relative_to(uploads) for one in files):
            raise Refused(REFUSED_FILE)
    elif isinstance(block, gr.Dataframe):
        _table(label, value)


def _table(label: str, value) -> None:
    """A table as the page sends one: {"headers": [text...], "data": [[cell...]...]}, cells scalars."""
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise Refused(f"{label}: must be a table with headers and rows, as the page sends it")
    headers, rows = value.get("headers") or [], value["data"]
    if not isinstance(headers, list) or not all(isinstance(h, str | int) for h in headers):
        raise Refused(f"{label}: the headers must be a list of names")
    if not all(isinstance(row, list) for row in rows):
        raise Refused(f"{label}: every row must be a list of cells")
    if sum(len(row) for row in rows) > MAX_TABLE_CELLS:
        raise Refused(f"{label}: more than {MAX_TABLE_CELLS} cells; keep one row per GPU model")
    for row in rows:
        for cell in row:
            if cell is not None:
                _scalar(label, cell)


def private_event_refusal(app, path: str, body: bytes) -> tuple[int, str | list] | None:
    """(status, detail) for a call that reaches a private event other than as the page does.

    A value the page's component could not send is answered 422 in gradio's own validation
    format (one {is_valid, message} per input), which the page shows under that field."""
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):
        return None  # gradio answers a body that is not JSON itself
    index = request.get("fn_index") if isinstance(request, dict) else None
    blocks = app.get_blocks()
    if isinstance(index, bool) or not isinstance(index, int) or index not in blocks.fns:
        return None  # no private event named: gradio answers (or refuses) it itself
    fn = blocks.fns[index]
    if fn.api_visibility == "public":
        return None
    if path != QUEUE_JOIN:
        return 404, f"fn_index {index} is not part of the studio's API; the endpoints are listed at /gradio_api/info"
    data = request.get("data")
    if not isinstance(data, list) or len(data) != len(fn.inputs):
        return 400, f"this event takes a list of {len(fn.inputs)} value(s), as the page sends them"
    session = app.state_holder.session_data.get(request.get("session_hash"))
    checked = []
    for block, value in zip(fn.inputs, data, strict=True):
        # a dropdown's choices may have been changed for this page: check against its copy
        if session is not None and block._id in session.blocks_config.blocks:
            block = session.blocks_config.blocks[block._id]
        try:
            check_value(block, value)
            checked.append({"is_valid": True, "message": ""})
        except Refused as why:
            checked.append({"is_valid": False, "message": str(why),
                            "parameter_name": getattr(block, "label", None) or type(block).__name__})
    return (422, checked) if any(not c["is_valid"] for c in checked) else None


def reads_body(scope) -> bool:
    path = scope.get("path", "")
    return scope.get("method") == "POST" and (path == QUEUE_JOIN or INDEXED_CALL.match(path) is not None)


async def read_body(receive) -> tuple[bytes | None, list[dict]]:
    """The whole body (None past MAX_BODY) and the messages read, to hand on to gradio."""
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None, messages
        size += len(message.get("body", b""))
        if size > MAX_BODY:
            return None, messages
        if not message.get("more_body"):
            return b"".join(m.get("body", b"") for m in messages), messages


class AccessGuard:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        refusal = access_refusal(scope) if scope["type"] == "http" else None
        if refusal is None and scope["type"] == "http" and reads_body(scope) and hasattr(scope.get("app"), "get_blocks"):
            body, messages = await read_body(receive)
            if body is None and messages[-1]["type"] == "http.request":
                refusal = 413, f"the request is larger than {MAX_BODY // 2**20} MiB"
            elif body is not None:
                refusal = private_event_refusal(scope["app"], scope["path"], body)
            receive = replay(messages, receive)
        if refusal is None:
            return await self.app(scope, receive, send)
        status, message = refusal
        body = json.dumps({"detail": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def replay(messages: list[dict], receive):
    """A receive that hands on the messages already read, then reads on."""
    held = list(messages)

    async def replayed():
        return held.pop(0) if held else await receive()

    return replayed
