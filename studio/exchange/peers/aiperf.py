"""AIPerf's profile_export.jsonl (one request a line) with profile_export_aiperf.json
(the run's settings and AIPerf's own aggregates) beside it, and a sweep folder of
them as one sweep.

A record: `metadata.request_start_ns` / `request_end_ns` (epoch nanoseconds),
`metadata.benchmark_phase` ("warmup" records are left out, as AIPerf leaves them out
of its own figures), `metrics.<name>` as `{value, unit}` (time_to_first_token,
request_latency, inter_chunk_latency as a list, output_sequence_length,
input_sequence_length), and `error` on a failed request. Field names were read from
the files AIPerf 0.13.0 wrote here (tests/fixtures/peers/README.md); the GPUs from
`telemetry_data.endpoints.*.gpus` as AIPerf's own `_summarize_telemetry`
(aiperf/operator/runs_index.py) reads them.
"""

from __future__ import annotations

from datetime import datetime, timezone

from studio.exchange.peers.record import ImportedRun, PeerFileError, Request, Scenario, finite, whole

PERCENTILES = (50, 90, 99)
TO_MS = {"ms": 1.0, "s": 1000.0, "sec": 1000.0, "us": 0.001, "ns": 1e-6}
DEFINITIONS = {
    "itl": "inter_token_latency: (request latency − TTFT) ÷ (output tokens − tokens of the first chunk): "
           "the studio's TPOT when the first chunk holds one token",
    "inter_chunk": "inter_chunk_latency: every gap between consecutive chunks, pooled: the studio's ITL",
    "latency": "request_latency: final response − request sent",
    # its docstring says benchmark_duration; the code divides by the phase's observation window
    # (metrics/types/output_token_throughput_metrics.py): start_time to end_time in the summary
    "tokens_per_second": "output_token_throughput: output tokens ÷ the profiling phase's observation window (the "
                         "summary's start_time to end_time), a little longer than first request to last response",
}
SAME_QUANTITY = (("ttft", "ttft"), ("tpot", "itl"), ("itl", "inter_chunk"), ("latency", "latency"),
                 ("tokens_per_second", "tokens_per_second"))
RATE_KINDS = {"poisson": "poisson rate", "constant": "constant rate", "gamma": "gamma rate",
              "user_centric": "constant rate"}


def is_record(line) -> bool:
    return isinstance(line, dict) and isinstance(line.get("metadata"), dict) and "request_start_ns" in line[
        "metadata"] and ("metrics" in line or "error" in line)


def is_summary(data) -> bool:
    return isinstance(data, dict) and "aiperf_version" in data and ("input_config" in data or "run_info" in data)


def _ms(metric, name: str, where: str) -> float | None:
    if not isinstance(metric, dict) or "value" not in metric:
        return None
    scale = TO_MS.get(str(metric.get("unit", "ms")))
    if scale is None:
        raise PeerFileError(where, f"{name} is in {metric.get('unit')!r}; the studio reads ms, s, us or ns")
    value = metric["value"]
    if isinstance(value, list):
        return None
    number = finite(value, name, where)
    return None if number is None else number * scale


def _gaps(metric, where: str) -> tuple[float, ...] | None:
    if not isinstance(metric, dict) or not isinstance(metric.get("value"), list):
        return None
    scale = TO_MS.get(str(metric.get("unit", "ms")), 1.0)
    return tuple(finite(v, "inter_chunk_latency", where) * scale for v in metric["value"])


def record(line: dict, where: str) -> Request | None:
    """One line of profile_export.jsonl; None for a warm-up record."""
    meta = line["metadata"]
    if str(meta.get("benchmark_phase", "profiling")) == "warmup":
        return None
    start_ns = whole(meta.get("request_start_ns"), "request_start_ns", where)
    end_ns = whole(meta.get("request_end_ns"), "request_end_ns", where)
    start = start_ns / 1e9 if start_ns is not None else None
    metrics = line.get("metrics") if isinstance(line.get("metrics"), dict) else {}
    error = line.get("error")
    ok = not error and not meta.get("was_cancelled")
    ttft = _ms(metrics.get("time_to_first_token"), "time_to_first_token", where)
    latency = _ms(metrics.get("request_latency"), "request_latency", where)
    tokens = metrics.get("output_sequence_length") or metrics.get("output_token_count") or {}
    return Request(
        ok=ok and ttft is not None, start=start,
        first_token=start + ttft / 1000 if start is not None and ttft is not None else None,
        last_token=start + latency / 1000 if start is not None and latency is not None else None,
        end=end_ns / 1e9 if end_ns is not None else None,
        output_tokens=whole(tokens.get("value") if isinstance(tokens, dict) else None, "output_sequence_length",
                            where),
        input_tokens=whole((metrics.get("input_sequence_length") or {}).get("value"), "input_sequence_length",
                           where),
        gaps_ms=_gaps(metrics.get("inter_chunk_latency"), where),
        error=None if ok else str(error.get("message") if isinstance(error, dict) else error or "cancelled")[:500])


def _tool_metrics(summary: dict, where: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family, name in (("ttft", "time_to_first_token"), ("itl", "inter_token_latency"),
                         ("inter_chunk", "inter_chunk_latency"), ("latency", "request_latency")):
        block = summary.get(name)
        if not isinstance(block, dict):
            continue
        for p in PERCENTILES:
            value = _ms({"value": block.get(f"p{p}"), "unit": block.get("unit", "ms")}, f"{name} p{p}", where)
            if value is not None:
                out[f"{family}_ms_p{p}"] = value
    for key, name in (("tokens_per_second", "output_token_throughput"), ("requests_per_second", "request_throughput")):
        value = finite((summary.get(name) or {}).get("avg"), name, where)
        if value is not None:
            out[key] = value
    return out


def _scenario(config: dict) -> tuple[Scenario, int | None]:
    phases = [p for p in config.get("phases") or [] if isinstance(p, dict) and p.get("kind", "profiling") == "profiling"]
    phase = phases[0] if phases else dict(config.get("loadgen") or {})
    kind = str(phase.get("type") or "")
    rate = phase.get("rate", phase.get("request_rate"))
    concurrency = phase.get("concurrency")
    osl = None
    for dataset in config.get("datasets") or []:
        mean = (((dataset or {}).get("prompts") or {}).get("osl") or {}).get("mean")
        osl = int(mean) if isinstance(mean, (int, float)) and not isinstance(mean, bool) and mean > 0 else osl
    if kind in RATE_KINDS or (rate is not None and kind != "concurrency"):
        return Scenario(RATE_KINDS.get(kind, "poisson rate"), float(rate) if rate is not None else None), osl
    if concurrency:
        return Scenario("concurrency", float(concurrency)), osl
    return Scenario("unknown"), osl


def _gpus(summary: dict) -> tuple[int | None, str | None]:
    endpoints = ((summary.get("telemetry_data") or {}).get("endpoints")) or {}
    count, name = 0, None
    for endpoint in endpoints.values() if isinstance(endpoints, dict) else []:
        gpus = (endpoint or {}).get("gpus") or {}
        if isinstance(gpus, dict):
            count += len(gpus)
            name = name or next((g.get("gpu_name") for g in gpus.values() if isinstance(g, dict)
                                 and g.get("gpu_name")), None)
    return (count or None), name


def _iso(text) -> str | None:
    try:
        stamp = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)  # AIPerf writes local time, no zone
    return stamp.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def run(lines: list, summary: dict | None, name: str, where: str) -> ImportedRun:
    """One profiling run: its records (may be []) and its summary (may be None)."""
    requests = [r for r in (record(line, where) for line in lines) if r is not None] if lines else None
    summary = summary or {}
    config = summary.get("input_config") if isinstance(summary.get("input_config"), dict) else {}
    scenario, osl = _scenario(config)
    models = ((config.get("models") or {}).get("items")) or []
    model = models[0].get("name") if models and isinstance(models[0], dict) else None
    gpus, gpu_type = _gpus(summary)
    ok = [r for r in requests or [] if r.ok]
    duration = (summary.get("benchmark_duration") or {}).get("avg")
    info = summary.get("run_info") if isinstance(summary.get("run_info"), dict) else {}
    return ImportedRun(
        name=name, scenario=scenario, model=str(model) if model else None, started_at=_iso(summary.get("start_time"))
        if summary.get("start_time") else None, duration_s=finite(duration, "benchmark_duration", where),
        requests=requests or None, completed=len(ok) if requests else whole(
            (summary.get("request_count") or {}).get("avg"), "request_count", where),
        failed=(len(requests) - len(ok)) if requests else None,
        output_tokens=sum(r.output_tokens or 0 for r in ok) if requests else None,
        input_tokens=sum(r.input_tokens or 0 for r in ok) if requests else None,
        requested_output_tokens=osl, tool_metrics=_tool_metrics(summary, where),
        settings={"phase": (config.get("phases") or [None])[0], "variation": info.get("variation_label"),
                  "trial": info.get("trial"), "endpoint": (config.get("endpoint") or {}).get("type")},
        gpus=gpus, gpu_type=gpu_type)


def require_records(lines: list, where: str) -> None:
    if not lines:
        raise PeerFileError(where, "the AIPerf records file is empty; import the profile_export.jsonl of a run "
                            "that finished")
    bad = next((i for i, line in enumerate(lines) if not is_record(line)), None)
    if bad is not None:
        raise PeerFileError(where, f"line {bad + 1} is not an AIPerf record (no metadata.request_start_ns); "
                            "the file is damaged or is not AIPerf's profile_export.jsonl")
