"""Hugging Face inference-benchmarker's results/<tokenizer>_<date>.json: aggregates
only (no per-request times), one entry of `results[]` per load step.

Shaped after inference-benchmarker 1.1.0's source: `BenchmarkReportWriter`
(src/writers.rs: `config`, `results`, `start_time`, `end_time`, `system`),
`BenchmarkResultsWriter` (`id`, `executor_type`, `config` {max_vus, duration_secs,
rate}, `time_to_first_token_ms` / `inter_token_latency_ms` / `e2e_latency_ms` as
{p50 … p99, avg}, `token_throughput_secs`, `request_rate`, ...), and the ids
src/benchmark.rs gives: "warmup", "throughput", "constant@R.RRreq/s". The warm-up
entry is not a benchmark and is left out.
"""

from __future__ import annotations

from datetime import datetime, timezone

from studio.exchange.peers.record import ImportedRun, PeerFileError, Scenario, finite, whole

PERCENTILES = (50, 90, 99)
DEFINITIONS = {
    "tpot": "inter_token_latency: the sum of the gaps after the first token ÷ (generated tokens − 1), per request "
            "(src/requests.rs): the studio's TPOT",
    "latency": "e2e_latency: response end − request start",
    "tokens_per_second": "token_throughput_secs: generated tokens of the successful requests ÷ the step's "
                         "duration",
    "percentile": "linear interpolation on durations truncated to microseconds",
}


def is_report(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("config"), dict) and isinstance(
        data.get("results"), list) and "model_name" in data["config"] and "benchmark_kind" in data["config"]


def _iso(text) -> str | None:
    try:
        stamp = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp.astimezone(timezone.utc).isoformat(timespec="milliseconds") if stamp.tzinfo else None


def _scenario(entry: dict) -> Scenario:
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    if entry.get("executor_type") == "ConstantArrivalRate" and config.get("rate") is not None:
        return Scenario("constant rate", float(config["rate"]))
    vus = config.get("max_vus")
    return Scenario("concurrency", float(vus)) if isinstance(vus, int) and vus > 0 else Scenario("throughput")


def _metrics(entry: dict, where: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family, name in (("ttft", "time_to_first_token_ms"), ("tpot", "inter_token_latency_ms"),
                         ("latency", "e2e_latency_ms")):
        block = entry.get(name) if isinstance(entry.get(name), dict) else {}
        for p in PERCENTILES:
            value = finite(block.get(f"p{p}"), f"{name}.p{p}", where)
            if value is not None:
                out[f"{family}_ms_p{p}"] = value
    for mine, theirs in (("tokens_per_second", "token_throughput_secs"), ("requests_per_second", "request_rate")):
        value = finite(entry.get(theirs), theirs, where)
        if value is not None:
            out[mine] = value
    return out


def read_runs(data: dict, where: str) -> tuple[list[ImportedRun], dict]:
    """The file's benchmarks and the labels its `config.meta` holds (engine, tp, device, ...)."""
    config = data["config"]
    meta = config.get("meta") if isinstance(config.get("meta"), dict) else {}
    decode = config.get("decode_options") if isinstance(config.get("decode_options"), dict) else {}
    runs = []
    for index, entry in enumerate(data["results"]):
        if not isinstance(entry, dict):
            raise PeerFileError(where, f"results[{index}] is not an object")
        if entry.get("id") == "warmup":
            continue
        successful = whole(entry.get("successful_requests"), "successful_requests", where)
        duration_ms = finite(entry.get("duration_ms"), "duration_ms", where)
        gpus = meta.get("gpus") or meta.get("tp")
        runs.append(ImportedRun(
            name=str(entry.get("id") or f"result {index + 1}"), scenario=_scenario(entry),
            model=str(config.get("model_name") or "") or None, started_at=_iso(data.get("start_time")),
            duration_s=duration_ms / 1000 if duration_ms is not None else None, completed=successful,
            failed=whole(entry.get("failed_requests"), "failed_requests", where),
            output_tokens=whole(entry.get("total_tokens"), "total_tokens", where),
            input_tokens=whole(entry.get("total_tokens_sent"), "total_tokens_sent", where),
            requested_output_tokens=whole(decode.get("num_tokens"), "decode_options.num_tokens", where),
            tool_metrics=_metrics(entry, where),
            settings={"executor_type": entry.get("executor_type"), "executor": entry.get("config"),
                      "benchmark_kind": config.get("benchmark_kind"), "run_id": config.get("run_id")},
            gpus=whole(int(gpus), "meta.gpus", where) if isinstance(gpus, str) and gpus.isdigit() else None,
            gpu_type=str(meta["device"]) if meta.get("device") else None,
            engine=str(meta["engine"]) if meta.get("engine") else None))
    if not runs:
        raise PeerFileError(where, "the file holds no benchmark results (only a warm-up, or none); import the "
                            "results of a benchmark that finished")
    return runs, {str(k): str(v) for k, v in meta.items()}
