"""`studio run --scenario server` and `studio run --url …` (issue 26): run the server
sweep, show its progress (the cell, the load's rate, requests done), store it, and
print each load's figures, each curve's knee and the highest rate within the SLO."""

from __future__ import annotations

import json
import sys
import threading

from runner.config import ConfigError
from studio.cli.args import EXIT_RUN_FAILED, fail


def _num(value, fmt: str = "{:.3g}") -> str:
    return "—" if value is None else fmt.format(value)


class Progress:
    """One line on stderr, rewritten as the load goes."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.rewrite = sys.stderr.isatty()  # a log file gets one line per event, not carriage returns

    def __call__(self, event: dict) -> None:
        if not self.enabled:
            return
        rate = event.get("rate")
        load = (f" · {rate:.3g} req/s" if rate is not None else "") if event.get("phase") == "load" else ""
        done = f" · {event['done']}/{event['total']} requests" if event.get("phase") == "load" else ""
        line = (f"cell {event['cell'] + 1}/{event['cells']} · {event['gpus']} GPU(s), tp {event['tp_size']} · "
                f"{event.get('phase', '')}{load}{done}")
        if self.rewrite:
            print(f"\r{line}   ", end="" if event.get("phase") == "load" else "\n", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


def load_table(runs: list[dict]) -> str:
    head = ("run", "GPUs", "tp", "load", "offered", "req/s", "tok/s", "TTFT p50", "TTFT p99", "lat p50", "lat p99",
            "errors", "status")
    def row(cells) -> str:  # the load's words left-aligned, the numbers right-aligned
        return "  ".join(f"{c!s:<28}" if i == 3 else f"{c!s:>9}" for i, c in enumerate(cells))
    lines = [row(head)]
    for r in runs:
        cells = (r["id"], r["num_gpus"], r.get("tp_size") or 1, (r.get("scenario") or "")[:28],
                 _num(r.get("offered_rate")), _num(r.get("requests_per_second")), _num(r.get("tokens_per_second")),
                 _num(r.get("ttft_ms_p50"), "{:.0f}"), _num(r.get("ttft_ms_p99"), "{:.0f}"),
                 _num(r.get("latency_ms_p50"), "{:.0f}"), _num(r.get("latency_ms_p99"), "{:.0f}"),
                 r.get("errors") or 0, r["status"] + (" (client lagged)" if r.get("client_lagged") else ""))
        lines.append(row(cells))
    return "\n".join(lines)


def curve_lines(outcome, slo: dict | None) -> list[str]:
    lines = []
    for c in outcome.curves:
        knee = f"knee at {c.knee:.3g} req/s" if c.knee is not None else "no knee within the rates offered"
        best = "" if not slo else (f"; highest rate within the SLO {c.best_rate:.3g} req/s" if c.best_rate is not None
                                   else "; no rate offered met the SLO")
        lines.append(f"{c.name}: {knee}{best}")
    return lines + [outcome.sentence]


def run_server_command(request, args, run_cell=None) -> int:
    from db.serving import server_runs
    from db.store import Store
    from studio.exchange.serving_run import run_server_sweep
    from studio.sweeps.server_settings import server_plan

    try:
        plan = server_plan(request)
    except ConfigError as exc:
        return fail(str(exc))
    store = Store(args.db)
    stop = threading.Event()
    done: dict = {}

    def work() -> None:
        try:
            done["outcome"] = run_server_sweep(plan, store, on_progress=Progress(not args.json), stop=stop,
                                               run_cell=run_cell)
        except BaseException as exc:  # shown by the main thread, which owns the exit code
            done["error"] = exc

    worker = threading.Thread(target=work, name="server-sweep")
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        if sys.stderr.isatty():
            print(file=sys.stderr)
        stop.set()  # ends the load in flight and stops the server; the cell is stored as cancelled
        worker.join()
        return fail("interrupted", 130)
    if "error" in done:
        raise done["error"]
    outcome = done["outcome"]
    runs = server_runs(store, outcome.sweep_id)
    if args.json:
        print(json.dumps({"sweep_id": outcome.sweep_id, "status": outcome.status, "runs": [
            {k: r.get(k) for k in ("id", "status", "num_gpus", "tp_size", "dp_size", "scenario", "offered_rate",
                                   "requests_per_second", "tokens_per_second", "goodput", "errors", "client_lagged",
                                   "ttft_ms_p50", "ttft_ms_p99", "latency_ms_p50", "latency_ms_p99", "error")}
            for r in runs], "curves": [{"layout": c.name, "knee": c.knee, "best_rate": c.best_rate}
                                       for c in outcome.curves], "sentence": outcome.sentence}, indent=2))
    else:
        print(f"sweep {outcome.sweep_id}: {plan.model}, server scenario, {plan.settings['profile']}, "
              f"{plan.max_new_tokens} new tokens: {outcome.status}")
        print(load_table(runs))
        print("\n".join(curve_lines(outcome, plan.slo)))
        for error in outcome.errors:
            print(f"failed: {error}", file=sys.stderr)
    return 0 if outcome.status == "succeeded" else EXIT_RUN_FAILED
