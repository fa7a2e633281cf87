"""GuideLLM's benchmarks.json / benchmarks.yaml, all three schema generations.

* `metadata.version` 2 (GuideLLM 0.7 and later) and 1 (0.5, 0.6): a benchmark's
  settings under `config` (`strategy`, `backend`), each request's times under
  `info.timings` (`request_start`, `first_token_iteration`, `last_token_iteration`,
  `request_end`), token counts as `prompt_tokens` / `output_tokens`.
* no `metadata` (0.3 and before): settings under `args.strategy` and `worker`, each
  request's times as `start_time`, `first_token_time`, `last_token_time`, `end_time`.

Requests come from `requests.successful` (ok), `errored` and `incomplete` (failed:
cut off or refused). Field names were read from the files GuideLLM 0.8.1, 0.6.1
and 0.3.1 wrote here (tests/fixtures/peers/README.md).
"""

from __future__ import annotations

from datetime import datetime, timezone

from studio.exchange.peers.record import ImportedFile, ImportedRun, PeerFileError, Request, Scenario, finite, whole

PERCENTILES = (50, 90, 99)
COMMON_DEFINITIONS = {
    "itl": "(last token − first token) ÷ (output tokens − 1): the studio's TPOT under another name",
    "latency": "response end − request sent (the end comes after the last token)",
    "tokens_per_second": "the mean of its output-token rate distribution between the benchmark's start_time "
                         "and end_time",
}
DEFINITIONS = {
    "v2": {**COMMON_DEFINITIONS, "tpot": "(last token − request sent) ÷ output tokens: the first token and its "
                                         "wait included"},
    "v0": {**COMMON_DEFINITIONS, "tpot": "(last token − first token) ÷ output tokens: the first token's wait left "
                                         "out, the first token still counted in the divisor"},
}
SCENARIOS = {"synchronous": "synchronous", "concurrent": "concurrency", "constant": "constant rate",
             "poisson": "poisson rate", "throughput": "throughput", "async": "constant rate"}


def is_guidellm(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("benchmarks"), list) and (
        "metadata" in data or any(isinstance(b, dict) and "requests" in b for b in data["benchmarks"]))


def generation(data: dict) -> str:
    """'v2', 'v1' or 'v0' (no metadata.version: GuideLLM 0.3 and before)."""
    version = (data.get("metadata") or {}).get("version")
    return {2: "v2", 1: "v1"}.get(version, "v0") if version is not None else "v0"


def _iso(stamp, name: str, where: str) -> str | None:
    value = finite(stamp, name, where)
    if value is None or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        raise PeerFileError(where, f"{name} {value!r} is not a time GuideLLM could have written") from None


def _dig(data, *keys):
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _request(item, ok: bool, gen: str, where: str) -> Request:
    if not isinstance(item, dict):
        raise PeerFileError(where, "a request is not an object; the benchmarks file is damaged")
    if gen == "v0":
        times = {"start": item.get("start_time"), "first": item.get("first_token_time"),
                 "last": item.get("last_token_time"), "end": item.get("end_time")}
    else:
        timings = _dig(item, "info", "timings") or {}
        times = {"start": timings.get("request_start"), "first": timings.get("first_token_iteration"),
                 "last": timings.get("last_token_iteration"), "end": timings.get("request_end")}
    times = {k: finite(v, f"request {k} time", where) for k, v in times.items()}
    error = _dig(item, "info", "error") or item.get("error") or (None if ok else "incomplete or errored")
    return Request(ok=ok, start=times["start"], first_token=times["first"], last_token=times["last"],
                   end=times["end"], output_tokens=whole(item.get("output_tokens"), "output_tokens", where),
                   input_tokens=whole(item.get("prompt_tokens"), "prompt_tokens", where),
                   error=None if ok else str(error)[:500])


def _requests(bench: dict, gen: str, where: str) -> list[Request] | None:
    groups = bench.get("requests")
    if not isinstance(groups, dict):
        return None
    out = []
    for status, ok in (("successful", True), ("errored", False), ("incomplete", False)):
        items = groups.get(status) or []
        if not isinstance(items, list):
            raise PeerFileError(where, f"requests.{status} is not a list")
        out += [_request(item, ok, gen, where) for item in items]
    # a file written with sampling keeps only some requests: recounting those would be a sample
    sampled = bench.get("request_samples") or _dig(bench, "config", "sample_size") or _dig(
        bench, "config", "sample_requests")
    return out if out and not sampled else None


def _tool_metrics(bench: dict, where: str) -> dict[str, float]:
    metrics = bench.get("metrics") or {}
    out: dict[str, float] = {}
    for family, name, scale in (("ttft", "time_to_first_token_ms", 1.0), ("tpot", "time_per_output_token_ms", 1.0),
                                ("itl", "inter_token_latency_ms", 1.0), ("latency", "request_latency", 1000.0)):
        summary = _dig(metrics, name, "successful")
        if not isinstance(summary, dict) or not summary.get("count"):
            continue
        for p in PERCENTILES:
            value = finite(_dig(summary, "percentiles", f"p{p}"), f"{name} p{p}", where)
            if value is not None:
                out[f"{family}_ms_p{p}"] = value * scale
    rate = finite(_dig(metrics, "output_tokens_per_second", "successful", "mean"), "output tokens/s", where)
    if rate is not None:
        out["tokens_per_second"] = rate
    requests = finite(_dig(metrics, "requests_per_second", "successful", "mean"), "requests/s", where)
    if requests is not None:
        out["requests_per_second"] = requests
    return out


def _scenario(strategy: dict) -> Scenario:
    kind = SCENARIOS.get(str(strategy.get("type_")), str(strategy.get("type_") or "unknown"))
    value = strategy.get("streams") if kind == "concurrency" else strategy.get("rate") if "rate" in kind else None
    if kind == "throughput":
        value = strategy.get("max_concurrency")
    return Scenario(kind, float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None)


def _benchmark(bench, index: int, gen: str, where: str) -> ImportedRun:
    if not isinstance(bench, dict):
        raise PeerFileError(where, f"benchmarks[{index}] is not an object")
    if gen == "v0":
        strategy = _dig(bench, "args", "strategy") or {}
        model = _dig(bench, "worker", "backend_model")
    else:
        strategy = _dig(bench, "config", "strategy") or {}
        model = _dig(bench, "config", "backend", "model")
    scenario = _scenario(strategy if isinstance(strategy, dict) else {})
    requests = _requests(bench, gen, where)
    ok = [r for r in requests or [] if r.ok]
    totals = _dig(bench, "metrics", "request_totals") or _dig(bench, "request_totals") or {}
    return ImportedRun(
        name=f"benchmark {index + 1}: {scenario.label()}", scenario=scenario,
        model=str(model) if model else None,
        started_at=_iso(bench.get("start_time"), "start_time", where),
        duration_s=finite(bench.get("duration"), "duration", where),
        requests=requests,
        completed=len(ok) if requests else whole(totals.get("successful"), "successful requests", where),
        failed=(len(requests) - len(ok)) if requests else None,
        output_tokens=sum(r.output_tokens or 0 for r in ok) if requests else None,
        input_tokens=sum(r.input_tokens or 0 for r in ok) if requests else None,
        tool_metrics=_tool_metrics(bench, where),
        settings={"strategy": strategy, "benchmark id": bench.get("id_") or _dig(bench, "config", "id_")},
    )


def _requested_output_tokens(data: dict, gen: str) -> int | None:
    """The output length the synthetic data asked for, where the file records it."""
    sources = _dig(data, "config", "spec", "data")  # v2: one dict per data source
    if isinstance(sources, list) and sources and isinstance(sources[0], dict):
        value = sources[0].get("output_tokens")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
    benches = data.get("benchmarks") or [{}]
    spec = _dig(data, "args", "data") if gen == "v1" else _dig(benches[0], "request_loader", "data")
    spec = ",".join(map(str, spec)) if isinstance(spec, list) else str(spec or "")  # 'prompt_tokens=32,output_tokens=24'
    for part in spec.split(","):
        key, _, value = part.partition("=")
        if key.strip() == "output_tokens" and value.strip().isdigit():
            return int(value.strip())
    return None


def read(data: dict, file_name: str, content_hash: str) -> ImportedFile:
    gen = generation(data)
    metadata = data.get("metadata") or {}
    version = metadata.get("guidellm_version") if gen != "v0" else None
    runs = [_benchmark(b, i, gen, file_name) for i, b in enumerate(data["benchmarks"])]
    if not runs:
        raise PeerFileError(file_name, "the GuideLLM file holds no benchmarks (an empty `benchmarks` list); "
                            "import the file of a run that finished")
    requested = _requested_output_tokens(data, gen)
    labels = _dig(data, "config", "metadata", "labels") or metadata.get("labels") or {}
    for run in runs:
        run.requested_output_tokens = requested
        run.labels = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
    names = {"v2": "metadata.version 2 (GuideLLM 0.7+)", "v1": "metadata.version 1 (GuideLLM 0.5-0.6)",
             "v0": "no metadata.version (GuideLLM 0.3 or before)"}
    return ImportedFile(
        tool="guidellm", version=str(version) if version else None, format=f"guidellm benchmarks, {names[gen]}",
        file_name=file_name, content_hash=content_hash, runs=runs,
        definitions=DEFINITIONS["v0" if gen == "v0" else "v2"], percentile_rule="lower",
        same_quantity=(("ttft", "ttft"), ("tpot", "tpot"), ("tpot", "itl"), ("latency", "latency"),
                       ("tokens_per_second", "tokens_per_second")),
    )
