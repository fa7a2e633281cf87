"""The studio's own load client: streams OpenAI-compatible requests and times each
one (issue 26). Standard library and httpx only; no other benchmark's code.

Every time is seconds since the load started, on `time.perf_counter`:
  scheduled_s  when the profile meant the request to go (its arrival time, or the
               moment a concurrency slot came free)
  sent_s       when the client actually began sending it; sent_s - scheduled_s is
               the client's lag, which says whether the load was the load asked for
  token_s      when each streamed chunk carrying text arrived; first_token_s is the first
  end_s        when the stream ended (or failed)
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import httpx

from runner.host.serving.spec import ENDPOINT_PATHS

ERROR_CHARS = 300
INTERRUPTED = "interrupted"


@dataclass
class Target:
    """Where and how to send: the servers (round-robin), the endpoint, the model name,
    and the engine-specific fields that fix the output length."""

    urls: list[str]
    endpoint: str
    model_name: str | None
    max_new_tokens: int
    extra_fields: dict = field(default_factory=dict)
    request_timeout_s: float = 120.0

    def url_for(self, index: int) -> str:
        return self.urls[index % len(self.urls)] + ENDPOINT_PATHS[self.endpoint]


def fixed_length_fields(engine: str, endpoint: str, max_new_tokens: int) -> dict:
    """Fields that make the server generate exactly max_new_tokens, for the engines
    known to accept them; none for an unknown one (a field outside a server's schema
    can make it refuse the request: transformers serve answers 422)."""
    if engine == "transformers":
        return {"generation_config": json.dumps({"min_new_tokens": max_new_tokens})}
    if engine == "vllm":
        return {"ignore_eos": True, "min_tokens": max_new_tokens}
    if engine == "sglang":
        return {"ignore_eos": True}
    return {}


def request_body(target: Target, prompt: str) -> dict:
    body: dict = {"max_tokens": target.max_new_tokens, "stream": True}
    if target.model_name:
        body["model"] = target.model_name
    if target.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
        # transformers serve refuses stream_options on chat completions (422), accepts it here
        body["stream_options"] = {"include_usage": True}
    body.update(target.extra_fields)
    return body


def new_record(index: int, prompt: str, scheduled_s: float, measured: bool) -> dict:
    return {"index": index, "scheduled_s": scheduled_s, "sent_s": scheduled_s, "first_token_s": None, "token_s": [],
            "end_s": None, "prompt": prompt, "output_text": "", "prompt_tokens": None, "output_tokens": 0,
            "status": None, "error": None, "measured": measured}


def read_event(endpoint: str, data) -> tuple[str, dict | None, str | None]:
    """(text, usage, error) of one streamed event."""
    if not isinstance(data, dict):
        return "", None, f"the server streamed {str(data)[:ERROR_CHARS]!r}, not a JSON object"
    if data.get("error") is not None:
        error = data["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        return "", None, f"the server reported an error mid-stream: {str(message)[:ERROR_CHARS]}"
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
    text = ""
    for choice in data.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        piece = (choice.get("delta") or {}).get("content") if endpoint == "chat" else choice.get("text")
        if isinstance(piece, str):
            text += piece
    return text, usage, None


async def send(client: httpx.AsyncClient, target: Target, record: dict, t0: float) -> dict:
    """Sends one request, streaming, and fills `record` with its times and text."""
    def now() -> float:
        return time.perf_counter() - t0

    record["sent_s"] = now()
    usage = None
    try:
        async with client.stream("POST", target.url_for(record["index"]), json=request_body(target, record["prompt"]),
                                 timeout=target.request_timeout_s) as answer:
            record["status"] = answer.status_code
            if answer.status_code != 200:
                detail = (await answer.aread()).decode("utf-8", "replace")[:ERROR_CHARS]
                record["error"] = f"HTTP {answer.status_code}: {detail}"
                return record
            async for line in answer.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                arrived = now()
                try:
                    text, event_usage, error = read_event(target.endpoint, json.loads(payload))
                except ValueError:
                    text, event_usage, error = "", None, f"the server streamed a line that is not JSON: {payload[:80]!r}"
                if error:
                    record["error"] = error
                    break
                usage = event_usage or usage
                if text:
                    record["token_s"].append(arrived)
                    record["output_text"] += text
                    if record["first_token_s"] is None:
                        record["first_token_s"] = arrived
    except asyncio.CancelledError:
        record["error"] = INTERRUPTED  # the load names why: Stop, or a dead server
        raise
    except httpx.TimeoutException:
        record["error"] = f"no answer within request_timeout_s ({target.request_timeout_s:g} s)"
    except httpx.HTTPError as exc:
        record["error"] = f"{type(exc).__name__}: {str(exc)[:ERROR_CHARS] or 'the connection failed'}"
    finally:
        record["end_s"] = now()
        # Output tokens: the server's own count (usage.completion_tokens) where it reports one;
        # else the streamed chunks that carried text, which is one token per chunk on
        # transformers serve and vLLM but may undercount a server that batches tokens per chunk.
        if usage and isinstance(usage.get("completion_tokens"), int):
            record["output_tokens"] = usage["completion_tokens"]
        else:
            record["output_tokens"] = len(record["token_s"])
        if usage and isinstance(usage.get("prompt_tokens"), int):
            record["prompt_tokens"] = usage["prompt_tokens"]
    return record


def make_client(parallel: int) -> httpx.AsyncClient:
    # one connection per request in flight: a pool limit would queue requests in the client, not the server
    limits = httpx.Limits(max_connections=max(parallel, 1) + 8, max_keepalive_connections=max(parallel, 1) + 8)
    return httpx.AsyncClient(limits=limits, trust_env=False)
