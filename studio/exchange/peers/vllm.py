"""vLLM's benchmark results: `vllm bench serve --save-result` (one JSON object, or
several separated by newlines with `--append-result`; per-request arrays only with
`--save-detailed`), the folders `vllm bench sweep serve` writes (`run=N.json` and
`summary.json` per combination), `vllm bench throughput --output-json` and
`vllm bench latency --output-json`.

Shaped after vLLM 0.34.0's source (vllm/benchmarks/serve.py, throughput.py,
latency.py, sweep/serve.py; lines cited in tests/fixtures/peers/README.md): times
in seconds, `start_times` from `time.perf_counter()`, a failed request kept in the
arrays with `errors[i]` set (its latency and TTFT 0), aggregates as
`median_/pNN_/mean_<metric>_ms`.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from studio.exchange.peers.record import ImportedRun, PeerFileError, Request, Scenario, finite, whole

PERCENTILES = (50, 90, 99)
DETAIL = ("ttfts", "itls", "latencies", "start_times", "output_lens")
DEFINITIONS = {
    "tpot": "(latency − TTFT) ÷ (output tokens − 1), latency to the last chunk: the studio's definition",
    "itl": "every gap between consecutive chunks, pooled: the studio's definition",
    "e2el": "e2el: last chunk received − request sent: the studio's definition",
    "tokens_per_second": "output_throughput: output tokens ÷ duration (the benchmark's wall time, from before the "
                         "first request to after the last response)",
}
SAME_QUANTITY = (("ttft", "ttft"), ("tpot", "tpot"), ("itl", "itl"), ("latency", "e2el"),
                 ("tokens_per_second", "tokens_per_second"))


def is_serve(data) -> bool:
    return isinstance(data, dict) and "completed" in data and "duration" in data and (
        "backend" in data or "endpoint_type" in data or "request_throughput" in data)


def is_throughput(data) -> bool:
    return isinstance(data, dict) and {"elapsed_time", "num_requests", "total_num_tokens",
                                       "tokens_per_second"} <= set(data)


def is_latency(data) -> bool:
    return isinstance(data, dict) and {"avg_latency", "latencies", "percentiles"} <= set(data)


def _date(text) -> str | None:
    """`date` is datetime.now().strftime("%Y%m%d-%H%M%S"): local time without a zone, read as UTC."""
    try:
        return datetime.strptime(str(text), "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc).isoformat(
            timespec="milliseconds")
    except ValueError:
        return None


def _number(value):
    """`request_rate` is "inf" as text and `burstiness` may be Infinity: both mean unbounded."""
    if value in ("inf", "Infinity") or (isinstance(value, float) and math.isinf(value)):
        return math.inf
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def scenario(data: dict) -> Scenario:
    rate, concurrency = _number(data.get("request_rate")), _number(data.get("max_concurrency"))
    if rate is None or math.isinf(rate):
        return Scenario("concurrency", float(concurrency)) if concurrency else Scenario("throughput")
    burstiness = _number(data.get("burstiness"))
    kind = "poisson rate" if burstiness in (None, 1, 1.0) else "constant rate" if burstiness == math.inf \
        else f"gamma rate (burstiness {burstiness:g})"
    return Scenario(kind, float(rate))


def _gpus(data: dict, where: str) -> int | None:
    for key in ("gpus", "num_gpus"):
        if data.get(key) not in (None, ""):
            return whole(int(data[key]) if str(data[key]).isdigit() else data[key], key, where)
    sizes = [data.get(k) for k in ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")]
    sizes = [int(s) for s in sizes if isinstance(s, int) or (isinstance(s, str) and s.isdigit())]
    return math.prod(sizes) if sizes else None


def _requests(data: dict, where: str) -> list[Request] | None:
    if not all(isinstance(data.get(k), list) for k in DETAIL):
        return None  # saved without --save-detailed: aggregates only
    n = len(data["ttfts"])
    if any(len(data[k]) != n for k in DETAIL) or (isinstance(data.get("errors"), list) and len(data["errors"]) != n):
        raise PeerFileError(where, "the per-request arrays (ttfts, itls, latencies, start_times, output_lens) "
                            "differ in length; the file is damaged")
    errors = data.get("errors") if isinstance(data.get("errors"), list) else [""] * n
    inputs = data.get("input_lens") if isinstance(data.get("input_lens"), list) else [None] * n
    out = []
    for i in range(n):
        start = finite(data["start_times"][i], "start_times", where)
        ttft = finite(data["ttfts"][i], "ttfts", where)
        latency = finite(data["latencies"][i], "latencies", where)
        tokens = whole(data["output_lens"][i], "output_lens", where)
        gaps = data["itls"][i] if isinstance(data["itls"][i], list) else []
        # a failed request stays in the arrays: its error says so, or its latency and tokens are 0
        ok = not errors[i] and bool(latency) and bool(tokens)
        out.append(Request(ok=ok, start=start, first_token=start + ttft if ok else None,
                           last_token=start + latency if ok else None, end=start + latency if ok else None,
                           output_tokens=tokens, input_tokens=whole(inputs[i], "input_lens", where),
                           gaps_ms=tuple(finite(g, "itls", where) * 1000 for g in gaps) if ok else None,
                           error=None if ok else str(errors[i] or "failed")[:500]))
    return out


def _tool_metrics(data: dict, where: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in ("ttft", "tpot", "itl", "e2el"):
        for p in PERCENTILES:
            key = f"median_{family}_ms" if p == 50 and f"p50_{family}_ms" not in data else f"p{p}_{family}_ms"
            value = finite(data.get(key), key, where)
            if value is not None:
                out[f"{family}_ms_p{p}"] = value
    for mine, theirs in (("tokens_per_second", "output_throughput"), ("requests_per_second", "request_throughput"),
                         ("total_tokens_per_second", "total_token_throughput"), ("goodput_requests_per_second",
                                                                                 "request_goodput")):
        value = finite(data.get(theirs), theirs, where)
        if value is not None:
            out[mine] = value
    return out


def serve_run(data: dict, name: str, where: str) -> ImportedRun:
    if not isinstance(data, dict) or not is_serve(data):
        raise PeerFileError(where, f"{name} is not a `vllm bench serve` result (no completed/duration)")
    requests = _requests(data, where)
    ok = [r for r in requests or [] if r.ok]
    kept = {k: v for k, v in data.items() if not isinstance(v, (list, dict)) and not k.startswith(
        ("mean_", "median_", "std_", "p"))}
    return ImportedRun(
        name=name, scenario=scenario(data), model=str(data.get("model_id") or "") or None,
        started_at=_date(data.get("date")), duration_s=finite(data.get("duration"), "duration", where),
        requests=requests, completed=whole(data.get("completed"), "completed", where),
        failed=whole(data.get("failed"), "failed", where) if data.get("failed") is not None else (
            len(requests) - len(ok) if requests else None),
        output_tokens=whole(data.get("total_output_tokens"), "total_output_tokens", where),
        input_tokens=whole(data.get("total_input_tokens"), "total_input_tokens", where),
        tool_metrics=_tool_metrics(data, where), settings=kept, gpus=_gpus(data, where),
        gpu_type=str(data["gpu"]) if data.get("gpu") else None,
        engine=str(data.get("engine")) if data.get("engine") else None)


def throughput_run(data: dict, where: str) -> ImportedRun:
    elapsed = finite(data.get("elapsed_time"), "elapsed_time", where)
    return ImportedRun(
        name="vllm bench throughput", scenario=Scenario("offline"), model=str(data.get("model_id") or "") or None,
        duration_s=elapsed, completed=whole(data.get("num_requests"), "num_requests", where),
        tool_metrics={"total_tokens_per_second": finite(data["tokens_per_second"], "tokens_per_second", where),
                      "requests_per_second": finite(data.get("requests_per_second"), "requests_per_second", where)},
        settings={"total_num_tokens": data.get("total_num_tokens"),
                  "note": "tokens_per_second counts prompt and output tokens together (throughput.py)"})


def latency_run(data: dict, where: str) -> ImportedRun:
    percentiles = data.get("percentiles") if isinstance(data.get("percentiles"), dict) else {}
    metrics = {}
    for p in PERCENTILES:
        value = finite(percentiles.get(str(p), percentiles.get(p)), f"percentiles[{p}]", where)
        if value is not None:
            metrics[f"batch_latency_ms_p{p}"] = value * 1000
    latencies = data.get("latencies") if isinstance(data.get("latencies"), list) else []
    return ImportedRun(
        name="vllm bench latency", scenario=Scenario("offline"), model=str(data.get("model_id") or "") or None,
        duration_s=finite(data.get("avg_latency"), "avg_latency", where), completed=len(latencies),
        tool_metrics=metrics, settings={"iterations": len(latencies),
                                        "note": "each latency is one batch of --batch-size prompts (latency.py)"})


def sweep_run_name(relative: str) -> str:
    """'SERVE--max_num_seqs=32-BENCH--max_concurrency=4/run=0.json' -> the combination and run."""
    return relative.replace(".json", "").replace("/", " ")
