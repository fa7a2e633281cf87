"""Figures of a server cell's loads (issue 26), from the per-request records that
`runner.host.serving.cell.run_server_cell` returns.

Each record becomes the importer's `Request`, and `studio.exchange.peers.recount`
counts it: the studio's own loads are held to the same definitions (runner.metrics)
as another tool's, written once. Only measured requests count: warm-up and
cool-down are sent but excluded from every figure.
"""

from __future__ import annotations

from runner.metrics import PERCENTILES
from studio.exchange.peers.record import ImportedRun, Request, Scenario
from studio.exchange.peers.recount import recount, request_figures

SCENARIOS = {"synchronous": "synchronous", "concurrency": "concurrency", "constant": "constant rate",
             "poisson": "poisson rate", "throughput": "throughput"}
LATENCY_COLUMNS = tuple(f"{m}_ms_p{p}" for m in ("ttft", "tpot", "itl", "latency") for p in PERCENTILES)


def _ok(record: dict) -> bool:
    status = record.get("status")
    return (record.get("error") is None and record.get("first_token_s") is not None
            and (status is None or 200 <= int(status) < 300))


def request(record: dict) -> Request:
    """One contract record as the importer's Request (times in seconds since the load started)."""
    tokens = [float(t) for t in record.get("token_s") or []]
    first = record.get("first_token_s")
    return Request(ok=_ok(record), start=record.get("sent_s"), first_token=first,
                   last_token=tokens[-1] if tokens else first, end=record.get("end_s"),
                   output_tokens=record.get("output_tokens"), input_tokens=record.get("prompt_tokens"),
                   gaps_ms=tuple((b - a) * 1000.0 for a, b in zip(tokens, tokens[1:])) or None,
                   error=record.get("error") or (None if _ok(record) else f"HTTP {record.get('status')}"))


def scenario(load: dict) -> Scenario:
    """The words History shows for a load: e.g. 'constant rate 2.5 req/s', 'concurrency 4'."""
    kind = load.get("profile") or "synchronous"
    if kind not in SCENARIOS:
        raise ValueError(f"load profile {kind!r} is not one of {', '.join(SCENARIOS)}")
    value = load.get("rate") if kind in ("constant", "poisson") else \
        load.get("concurrency") if kind == "concurrency" else None
    return Scenario(SCENARIOS[kind], value)


def load_figures(load: dict, slo: dict | None = None) -> tuple[dict, list[dict]]:
    """(the load's figures, one row per measured request).

    Figures: p50/p90/p99 of TTFT, TPOT (first token excluded), ITL and latency;
    output tokens/s and requests/s over the measured window (first measured send to
    last measured response); goodput under `slo`; completed and failed (errors);
    the offered rate; whether the client fell behind its schedule."""
    measured = [r for r in load.get("requests") or [] if r.get("measured", True)]
    requests = [request(r) for r in measured]
    run = ImportedRun(name=load.get("profile") or "", scenario=scenario(load), requests=requests)
    figures, _ = recount(run, slo)
    rows = []
    for record, req in zip(measured, requests):
        row = {"index": record.get("index"), "ok": req.ok, "error": req.error, "prompt": record.get("prompt", ""),
               "output": record.get("output_text", ""), "tokens": record.get("output_tokens") or 0,
               "ttft_ms": None, "tpot_ms": None, "latency_ms": None, "itl_ms": list(req.gaps_ms or ()),
               "client_lag_ms": None if record.get("sent_s") is None or record.get("scheduled_s") is None else
               max(0.0, record["sent_s"] - record["scheduled_s"]) * 1000.0}
        one = request_figures(req)
        if one:
            row.update({k: one[k] for k in ("ttft_ms", "tpot_ms", "latency_ms")})
        rows.append(row)
    offered = load.get("rate") if load.get("rate") is not None else figures.get("requests_per_second")
    figures.update({"profile": load.get("profile"), "scenario": run.scenario.label(),
                    "rate": load.get("rate"), "concurrency": load.get("concurrency"), "offered_rate": offered,
                    "client_lagged": bool(load.get("client_lagged")),
                    "max_client_lag_s": load.get("max_client_lag_s"), "errors": figures["failed"],
                    "measured_window_s": load.get("duration_s")})
    return figures, rows

