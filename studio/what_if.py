"""What a sweep would give at GPU counts it did not run: one answer for the deck,
the Analysis tab, the report and the CLI.

Two questions, each with one function behind it. "At most?" is the work-
quantisation ceiling (`scaling_models.quantisation`, carried in the analysis'
`quantisation_curve`): an upper bound that assumes every round takes as long as
at the smallest count. "How much?" is the prediction of `studio.predict`, with
its interval and its held-out error. `what_if_rows` puts the two side by side
for the same counts, so no view can show one where another shows the other."""

from __future__ import annotations


def what_if_counts(counts: list[int]) -> list[int]:
    """The counts a what-if shows by default: the sweep's own and two past them."""
    counts = sorted({int(n) for n in counts if n})
    if not counts:
        return [1, 2]
    top = counts[-1]
    return sorted(set(counts) | {top + 1, 2 * top})


def sweep_what_if(sweep: dict, ranks_by_run: dict, counts: list[int]) -> dict:
    """`studio.predict.predict` at the default counts, or why it cannot answer."""
    from studio.predict import PredictError, predict

    try:
        return predict(sweep, ranks_by_run, what_if_counts(counts))
    except PredictError as exc:
        return {"error": str(exc), "predictions": []}


def what_if_rows(analysis: dict) -> list[dict]:
    """Per default count: rounds on the busiest rank, the quantisation ceiling in
    tokens/s, the prediction with its interval, and the measured median if run."""
    from studio.scaling_models import quantisation

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
