"""What the web server answers when gradio refuses a file path a client sent.

Gradio refuses a path outside its upload folder (the database, a model cache)
before any handler runs, and its 400 says why by listing every blocked server
folder. This ASGI middleware, given to the FastAPI app through
`launch(app_kwargs=...)`, replaces such an answer with one that names no folder.
"""

from __future__ import annotations

import json

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
