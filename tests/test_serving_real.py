"""The runner side of the server scenario against a real `transformers serve` on tiny
(issue 26): two replicas of the embedded default start side by side, stream token by
token (so TTFT is not the latency), and their whole trees are gone afterwards."""

from __future__ import annotations

from statistics import median

import psutil
import pytest

from runner.host.serving.cell import run_server_cell
from runner.host.serving.spec import ServerCellSpec

NEW_TOKENS = 16


def serve_available() -> bool:
    from transformers.utils.import_utils import is_serve_available

    return is_serve_available()


@pytest.mark.slow
@pytest.mark.skipif(not serve_available(), reason="transformers serve needs openai, fastapi and uvicorn "
                    "(pyproject.toml lists openai; bash scripts/install.sh installs it)")
def test_a_sweep_against_two_transformers_serve_replicas_on_tiny_streams_every_token():
    spec = ServerCellSpec(model="tiny", gpus=2, replicas=2, profile="sweep", sweep_points=1, max_new_tokens=NEW_TOKENS,
                          prompts=("The King is dead. Long live the Queen.", "Call me Ishmael."),
                          requests_per_load=4, warmup_requests=1, cooldown_requests=1, health_timeout_s=180)
    result = run_server_cell(spec)
    assert result["status"] == "succeeded", (result["error"], result["log_tail"])
    assert [load["profile"] for load in result["loads"]] == ["synchronous", "throughput", "constant"]
    sync = [r for r in result["loads"][0]["requests"] if r["measured"]]
    for r in sync:
        assert r["output_tokens"] == NEW_TOKENS  # the server's usage, with the length fixed by generation_config
    # Tokens arrive as they are decoded, not flushed in one chunk at the end (the old byte vocabulary's
    # stream was one chunk: spread 0). Medians over the requests, since on a loaded 2-core machine one
    # request's decode can stall and its chunks bunch up (or two tokens share a chunk).
    chunks = median(len(r["token_s"]) for r in sync)
    spread = median((r["token_s"][-1] - r["token_s"][0]) / (r["end_s"] - r["sent_s"]) if r["token_s"] else 0.0
                    for r in sync)
    assert chunks >= NEW_TOKENS // 2 and spread > 0.25, (chunks, spread)
    ports = [url.rsplit(":", 1)[1] for url in result["url"].split(", ")]
    assert len(ports) == 2  # on CPU both replicas share the RAM: each caps its KV cache (spec.CPU_CACHE)
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if "serve" in (p.info["cmdline"] or [])
            and set(ports) & set(p.info["cmdline"] or [])]
    assert not left
