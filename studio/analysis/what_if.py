"""What a sweep would give at GPU counts it did not run: one answer for the deck,
the Analysis tab, the report and the CLI.

Two questions, each with one function behind it. "At most?" is the work-
quantisation ceiling (`scaling_models.quantisation`, carried in the analysis'
`quantisation_curve`): an upper bound that assumes every round takes as long as
at the smallest count. "How much?" is the prediction of `studio.analysis.predict`, with
its interval and its held-out error. `what_if_rows` puts the two side by side
for the same counts, so no view can show one where another shows the other."""

from __future__ import annotations

from runner.config import LIMITS, ConfigError, whole, whole_list
from studio.analysis.predict import PredictError, predict


def what_if_counts(counts: list[int]) -> list[int]:
    """The counts a what-if shows by default: the sweep's own and two past them."""
    counts = sorted({int(n) for n in counts if n})
    if not counts:
        return [1, 2]
    top = counts[-1]
    return sorted(set(counts) | {top + 1, 2 * top})


def sweep_what_if(sweep: dict, ranks_by_run: dict, counts: list[int]) -> dict:
    """`studio.analysis.predict.predict` at the default counts, or why it cannot answer."""
    try:
        return predict(sweep, ranks_by_run, what_if_counts(counts))
    except PredictError as exc:
        return {"error": str(exc), "predictions": []}


def what_if_rows(analysis: dict) -> list[dict]:
    """Per default count: rounds on the busiest rank, the quantisation ceiling in
    tokens/s, the prediction with its interval, and the measured median if run."""
    from studio.analysis.scaling_models import quantisation

    points = analysis.get("points") or []
    if not points:
        return []
    counts = what_if_counts(analysis["counts"])
    base_n, base = points[0]["gpus"], points[0]["throughput"]["median"]
    ceiling = {q["gpus"]: q for q in analysis.get("quantisation_curve") or []}
    prompts = int((analysis.get("settings") or {}).get("num_prompts") or 0)
    batch = int(analysis.get("batch_size_effective") or 1)
    missing = [n for n in counts if n not in ceiling]
    if prompts and missing:  # past the curve's reach: the same function, the same base
        ceiling.update({q["gpus"]: q for q in quantisation(prompts, batch, missing, base=base_n)})
    predicted = {p["gpus"]: p for p in (analysis.get("what_if") or {}).get("predictions") or []}
    measured = {p["gpus"]: p["throughput"]["median"] for p in points}
    rows = []
    for n in counts:
        q, p = ceiling.get(n), predicted.get(n) or {}
        rows.append({"gpus": n, "rounds": q["rounds"] if q else p.get("rounds"),
                     "ceiling": base * q["ceiling_speedup"] if q else None,
                     "predicted": p.get("tokens_per_second"), "low": p.get("low"), "high": p.get("high"),
                     "measured": measured.get(n)})
    return rows


def whole_text(value) -> str:
    """A figure (rounds, tokens/s) as every what-if table writes it: whole, or a dash where there is none."""
    return "–" if value is None else f"{value:.0f}"


def what_if_markdown(rows: list[dict], held_out: str = "") -> str:
    """The rows as a table, with what each column is: the deck's words and the tab's."""
    if not rows:
        return ""
    head = ("| GPUs | rounds (busiest rank) | ceiling, tokens/s | predicted, tokens/s | interval | measured |\n"
            "|---|---|---|---|---|---|\n")
    body = "\n".join(
        f"| {r['gpus']} | {whole_text(r['rounds'])} | {whole_text(r['ceiling'])} | {whole_text(r['predicted'])} | "
        f"{whole_text(r['low'])}–{whole_text(r['high'])} | {whole_text(r['measured'])} |" for r in rows)
    note = ("\n\nThe ceiling is what the rounds allow if every round took as long as at the smallest count; "
            "the prediction also models the time per round (contention).")
    return head + body + note + (f" {held_out[0].upper() + held_out[1:]}." if held_out else "")


MAX_GPUS = 1024  # far past any node count; stops "--gpus 99999999" from looping for minutes


def _whole(name: str, value, flag: str) -> int | None:
    """A what-if setting within the limits a run has (runner.config.LIMITS): a prediction
    for a run the studio would refuse to start answers nothing anyone can check."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return whole(name, value, 1, LIMITS[name], example=f"{flag} 8")


def parse_gpus(value) -> list[int] | None:
    """'1,2,4' (or a list of numbers) into counts; None or '' is the sweep's own counts.
    A count given twice is refused, as a sweep's grid refuses it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return sorted(whole_list("gpus", value, 1, MAX_GPUS, example="1,2,4,8"))


def parse_request(gpus, batch_size, num_prompts, max_new_tokens) -> dict:
    return {"gpus": parse_gpus(gpus), "batch_size": _whole("batch_size", batch_size, "--batch-size"),
            "num_prompts": _whole("num_prompts", num_prompts, "--num-prompts"),
            "max_new_tokens": _whole("max_new_tokens", max_new_tokens, "--max-new-tokens")}


def predict_stored(store, sweep_id: int, request: dict) -> dict:
    """Load one sweep with its rank timelines and predict; a ConfigError names what is wrong."""
    sweep = store.get_sweep(int(sweep_id))
    if sweep is None:
        known = ", ".join(str(s["id"]) for s in store.list_sweeps(limit=20)) or "none yet"
        raise ConfigError("sweep", f"there is no sweep {sweep_id}; stored sweeps: {known}")
    ranks = store.ranks_for_runs(r["id"] for r in sweep["runs"])
    gpus = request["gpus"] or sorted(set(sweep.get("gpu_counts") or [])) or [1]
    try:
        return predict(sweep, ranks, gpus, request["batch_size"], request["num_prompts"], request["max_new_tokens"])
    except PredictError as exc:
        raise ConfigError(exc.setting, str(exc).split(": ", 1)[1]) from None
