"""What the web server answers when gradio refuses a file path a client sent, and
the requests it answers itself before gradio sees them (AccessGuard).

Gradio refuses a path outside its upload folder (the database, a model cache)
before any handler runs, and its 400 says why by listing every blocked server
folder. This ASGI middleware, given to the FastAPI app through
`launch(app_kwargs=...)`, replaces such an answer with one that names no folder.
"""

from __future__ import annotations

import json
import re
from http.cookies import CookieError, SimpleCookie

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


class AccessGuard:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        refusal = access_refusal(scope) if scope["type"] == "http" else None
        if refusal is None:
            return await self.app(scope, receive, send)
        status, message = refusal
        body = json.dumps({"detail": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
