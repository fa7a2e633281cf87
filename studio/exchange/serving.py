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



def _outputs(rows: list[dict]) -> list[dict]:
    return [{"prompt_index": i, "rank": 0, "prompt": r["prompt"] or "", "output": r["output"] or "",
             "tokens": r["tokens"], "ttft_ms": r["ttft_ms"], "tpot_ms": r["tpot_ms"], "latency_ms": r["latency_ms"],
             "itl_ms": r["itl_ms"], "client_lag_ms": r["client_lag_ms"], "error": r["error"]}
            for i, r in enumerate(rows)]


def run_rows(cell: dict, *, model: str, max_new_tokens: int, slo: dict | None = None, label: str = "") -> list[dict]:
    """A server cell's result as runs rows (db.serving): one per load, with its
    per-request outputs. A cell that failed before its first load is one failed row
    holding the error and the server's log tail, so History shows why."""
    common = {"model": model, "max_new_tokens": max_new_tokens, "num_gpus": cell.get("gpus") or 1,
              "world_size": cell.get("gpus") or 1, "tp_size": cell.get("tp_size") or 1,
              "dp_size": cell.get("replicas") or 1, "engine": cell.get("engine"), "server_url": cell.get("url"),
              "label": label}
    config = {"model": model, "mode": "server", "max_new_tokens": max_new_tokens, "engine": cell.get("engine"),
              "url": cell.get("url"), "endpoint": cell.get("endpoint"), "slo": slo}
    loads = cell.get("loads") or []
    ended = cell.get("status") or "failed"
    rows = []
    for i, load in enumerate(loads):
        figures, per_request = load_figures(load, slo)
        last = i == len(loads) - 1
        # the load a stop cut short is cancelled whatever its requests did: it is not the load asked for
        cut = last and ended == "cancelled"
        ok = bool(figures["completed"]) and not cut and not (last and ended != "succeeded" and figures["errors"])
        status = "succeeded" if ok else ("cancelled" if cut else "failed")
        rows.append({**common, "status": status, "started_at": load.get("started_at"),
                     "error": None if ok else (cell.get("error") if last else None) or
                     f"{figures['errors']} of {len(per_request)} requests failed",
                     "server_log_tail": None if ok else cell.get("log_tail"),
                     "mode": "server", "batch_size": load.get("concurrency") or 0, "num_prompts": len(per_request),
                     "tokens": figures["tokens"], "seconds": figures["seconds"],
                     "tokens_per_second": figures["tokens_per_second"],
                     **{k: figures.get(k) for k in LATENCY_COLUMNS},
                     "requests_per_second": figures["requests_per_second"], "goodput": figures["goodput"],
                     "errors": figures["errors"], "client_lagged": int(figures["client_lagged"]),
                     "max_client_lag_s": figures["max_client_lag_s"], "profile": figures["profile"],
                     "offered_rate": figures["offered_rate"], "scenario": figures["scenario"],
                     "config": {**config, "load": {"profile": load.get("profile"), "rate": load.get("rate"),
                                                   "concurrency": load.get("concurrency")}},
                     "outputs": _outputs(per_request)})
    if not rows:
        rows.append({**common, "status": "cancelled" if ended == "cancelled" else "failed", "mode": "server",
                     "error": cell.get("error") or "the server cell ended before its first load",
                     "server_log_tail": cell.get("log_tail"), "batch_size": 0, "num_prompts": 0,
                     "scenario": "server", "config": config, "outputs": []})
    return rows
