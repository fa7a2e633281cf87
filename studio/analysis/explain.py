"""A sweep's analysis in words, with the numbers it rests on."""

from __future__ import annotations

import math

FLAT_ROUND_TOLERANCE = 0.10  # time per round within 10% counts as flat


def _cpu_cores(analysis: dict) -> int | None:
    env = analysis.get("environment") or {}
    nodes = env.get("nodes") or [env]
    cores = nodes[0].get("cpu_cores") if nodes and isinstance(nodes[0], dict) else None
    return int(cores) if cores else None


def _sig(value: float) -> str:
    """Three significant digits, trailing zeros kept (3.00, not 3)."""
    return f"{value:#.3g}".rstrip(".")


def _join(values, fmt: str = "{}") -> str:
    if fmt == "{:.3g}":
        return ", ".join(_sig(v) for v in values)
    return ", ".join(fmt.format(v) for v in values)


def explain(analysis: dict) -> str:
    """The diagnosis in words, with the numbers it rests on."""
    d = analysis.get("diagnosis")
    points = analysis["points"]
    if not points:
        return analysis.get("explanation") or ""
    counts = [p["gpus"] for p in points]
    lines = []
    if d is None:
        lines.append("The sweep does not record how many prompts it ran, so the quantisation model cannot be applied.")
        return "\n".join(lines)
    if analysis["sweep"].get("status") in ("running", "queued"):
        lines.append(f"This sweep is still running: {analysis['runs_used']} run(s) finished so far, "
                     "so these figures will change.")
    rows = d["rows"]
    b = analysis["batch_size_effective"]
    n_prompts = analysis["settings"].get("num_prompts")
    lines.append(f"{n_prompts} prompts, batch {b}, on {_join(counts)} GPU(s): the busiest rank runs "
                 f"{_join(r['rounds'] for r in rows)} rounds (generate calls), taking "
                 f"{_join((r['seconds_per_round'] for r in rows), '{:.3g}')} s per round.")
    lines.append(f"Predicted speedup from rounds alone: {_join((r['predicted_speedup'] for r in rows), '{:.2f}')}; "
                 f"measured: {_join((r['measured_speedup'] for r in rows), '{:.2f}')}.")
    verdict = d["verdict"]
    if verdict == "single-count":
        lines.append("Only one GPU count succeeded, so there is no scaling to explain yet.")
    elif verdict == "near-linear":
        lines.append("Every count runs at 90% efficiency or better: there is no plateau to explain.")
    elif verdict == "quantisation":
        lines.append(f"Cause: work quantisation/imbalance. Seconds per round stay within "
                     f"{100 * (d['round_growth_max'] - 1):.0f}% of the {counts[0]}-GPU value while the rounds on the "
                     "busiest rank drop in steps; the measured speedup follows the rounds, not a communication cost.")
    elif verdict == "contention":
        worst = max(rows, key=lambda r: r["round_growth"])
        before, after = _sig(rows[0]["seconds_per_round"]), _sig(worst["seconds_per_round"])
        lines.append(f"Cause: contention. A round takes {worst['round_growth']:.2f}x as long on {worst['gpus']} GPUs "
                     f"as on {counts[0]} ({before} s -> {after} s); "
                     "the ranks slow each other down (shared memory bandwidth, CPU cores, PCIe or the interconnect), "
                     "while the rounds alone would allow more speedup.")
        cores = _cpu_cores(analysis)
        if analysis.get("device") == "cpu" and cores and max(counts) > cores:
            lines.append(f"Here the ranks are CPU processes and the machine has {cores} CPU cores: from "
                         f"{cores + 1} processes on, they take turns on the same cores.")
    else:
        lines.append(f"Cause: both. Quantisation costs a factor {math.exp(d['loss_quantisation']):.2f} and slower "
                     f"rounds (contention) a factor {math.exp(d['loss_contention']):.2f} over the counts swept.")
    faster = [r for r in rows[1:] if r["round_growth"] < 1.0 - FLAT_ROUND_TOLERANCE]
    if faster:
        r = min(faster, key=lambda r: r["round_growth"])
        lines.append(f"A round took less time on {r['gpus']} GPUs than on {counts[0]} "
                     f"({_sig(rows[0]['seconds_per_round'])} s -> {_sig(r['seconds_per_round'])} s), so the measured "
                     "speedup beats the rounds ceiling there; check the confidence intervals before reading it "
                     "as real.")
    for a, c, rounds in d["flat_steps"]:
        lines.append(f"Going from {a} to {c} GPUs leaves the busiest rank with {rounds} rounds, so the extra GPUs "
                     "cannot make the run faster.")
    check = [c for c in analysis.get("timeline_check", []) if c["runs_checked"]]
    if check:
        if all(c["agrees"] for c in check):
            lines.append("The stored timelines agree: every rank ran the predicted number of generate calls ("
                         + "; ".join(f"{c['gpus']} GPU(s): {_join(c['predicted'])}" for c in check) + ").")
        else:
            bad = [c for c in check if not c["agrees"]]
            lines.append("The stored timelines disagree with the model at "
                         + "; ".join(f"{c['gpus']} GPU(s): predicted {_join(c['predicted'])}, recorded "
                                     f"{' / '.join(_join(o) for o in c['observed'])}" for c in bad)
                         + ": the split was not the one assumed, so trust the timeline.")
        timed = [c for c in check if c["round_seconds_median"]]
        if timed:
            lines.append("Median generate call in the timelines: "
                         + ", ".join(f"{_sig(c['round_seconds_median'])} s at {c['gpus']}" for c in timed) + ".")
    knee_info = analysis.get("knee") or {}
    if knee_info.get("count"):
        lines.append(f"Knee: at {knee_info['count']} GPUs an added GPU brings less than "
                     f"{knee_info['threshold']:.2f} of a GPU's worth of speedup.")
    usl_fit = analysis["fits"].get("usl") or {}
    if usl_fit.get("lam") is not None:
        peak = (f"peak at n* = {usl_fit['peak_n']:.1f}" if usl_fit.get("peak_n") else "no peak (κ = 0)")
        lines.append(f"USL fit: σ = {usl_fit['sigma']:.3f} (contention), κ = {usl_fit['kappa']:.4f} (coherency), "
                     f"{peak}, R² = {usl_fit['r2']:.3f}." if usl_fit.get("r2") is not None else
                     f"USL fit: σ = {usl_fit['sigma']:.3f}, κ = {usl_fit['kappa']:.4f}, {peak}.")
        if usl_fit.get("r2") is not None and usl_fit["r2"] < 0.5:
            lines.append("The fit explains less than half of the variation between runs: the repeats are noisy, "
                         "so read σ and κ loosely and add repeats.")
        if verdict == "quantisation":
            lines.append("The USL treats the quantisation steps as contention: read its σ and κ as a smooth summary, "
                         "not as a cause.")
    sug = analysis.get("suggestion")
    if sug and sug.get("text"):
        # a batch that removes the steps does not cure contention: say so, or it reads as the remedy
        side = verdict == "contention" and sug["text"].startswith("To remove")
        lines.append(("Quantisation is not what limits this sweep; still: " if side else "") + sug["text"])
    return "\n".join(lines)


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else _sig(value)


def _percent(share: float) -> str:
    return f"{100 * share:.0f}%" if share >= 0.1 else f"{100 * share:.1f}%"


def _tradeoff_sentence(t: dict, named: bool) -> str:
    where = f"On {t['gpus']} GPUs" + (" (" + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in t["setting"].items()
                                                       if v is not None) + ")" if named else "")
    best, other = t["best_throughput"], t["compared_with"]
    first = t.get("lowest_ttft")
    ttft = (f"; {first['layout']} had the lowest TTFT p50 ({_ms(first['ttft_ms_p50']['to'])} against "
            f"{_ms(first['ttft_ms_p50']['from'])} ms), at {first['throughput_ratio']:.2f}x the tokens/s") if first else ""
    if t["same"]:
        tpot = f" and the lowest TPOT p50 ({_ms(t['tpot_ms_p50']['from'])} ms)" if t["tpot_ms_p50"] else ""
        return (f"{where}, {best} gave both the most tokens/s ({t['throughput']['best']:.1f}){tpot} of the "
                f"{len(t['layouts'])} layouts measured ({', '.join(t['layouts'])}){ttft}.")
    text = (f"{where}, {best} gave {t['throughput_ratio']:.1f}x the tokens/s of {other} "
            f"({t['throughput']['best']:.1f} against {t['throughput']['other']:.1f})")
    changes, verb = [], None
    for key, name in (("tpot_ms_p50", "TPOT p50"), ("ttft_ms_p50", "TTFT p50")):
        change = t[key]
        if change:
            this = "cut" if change["to"] < change["from"] else "raised"
            changes.append(("" if this == verb else this + " ") + f"{name} from {_ms(change['from'])} to "
                           f"{_ms(change['to'])} ms")
            verb = this
    if changes and t["lowest_tpot"]:
        text += f"; {other} " + " and ".join(changes)
    return text + ttft + "."


def explain_layouts(summary: dict | None, model: str | None = None) -> list[str]:
    """The layouts in words: the trade-off at equal GPU count, the share of a decode step
    spent in all-reduce, and the correctness gate."""
    if not summary:
        return []
    lines = []
    named = len(summary["tradeoffs"]) > 1
    lines += [_tradeoff_sentence(t, named) for t in summary["tradeoffs"]]
    for c in summary["comm"]:
        counts = [p for p in c["per_count"] if p["comm_fraction"] is not None]
        where = (": " + ", ".join(f"{_percent(p['comm_fraction'])} as {p['layout']}" for p in counts)
                 if len(counts) > 1 else f", as {counts[0]['layout']}" if counts else "")
        lines.append(f"tp {c['tp']}{' on ' + model if model else ''} spends {_percent(c['comm_fraction'])} of each "
                     f"decode step in all-reduce (the tensor-parallel collectives; median of {c['runs']} "
                     f"run{'s' if c['runs'] > 1 else ''}{where}).")
    gate = summary["correctness"]
    if gate["compared"]:
        refs = ", ".join(map(str, gate["references"])) or "?"
        if not gate["below"]:
            lines.append(f"Correctness: all {gate['compared']} run(s) compared produced the same greedy tokens as "
                         f"the reference run {refs} on every prompt (100 %).")
        else:
            lines.append(f"Correctness: {gate['agree']} of {gate['compared']} run(s) compared agree with the "
                         f"reference run {refs} on every prompt; {len(gate['below'])} fell below 100 %.")
        for b in gate["below"]:
            first = b["first_difference"]
            share = f"{100 * b['agreement']:.1f}".rstrip("0").rstrip(".")
            text = f"Run {b['run_id']} ({b['layout']}, {b['dtype'] or 'dtype unknown'}) agreed on {share}% of the prompts"
            if first:
                text += (f"; the first difference is in prompt {first.get('prompt_index')} at token "
                         f"{first.get('position')} ({first.get('reference_token')} in the reference, "
                         f"{first.get('token')} here)")
            if b["worth_a_look"]:
                text += (". ⚠ Greedy float32 should agree exactly: this is worth a look (bfloat16/float16 and a "
                         "changed reduction order are the usual reason elsewhere, not here).")
            elif not b["greedy"]:
                text += ". The run sampled its tokens, so its outputs are not expected to agree."
            else:
                how = ("a tensor-parallel all-reduce sums the partial results in another order" if b["tp"] > 1
                       else "other batch shapes make the kernels sum in another order")
                text += (f". Under {b['dtype'] or 'a low precision'} this is usually a changed reduction order ({how}, "
                         "and bfloat16/float16 round each partial sum), not a bug; greedy float32 should agree exactly.")
            lines.append(text)
    return lines


def explanation_line(explanation: str, prefix: str) -> str | None:
    return next((line for line in explanation.splitlines() if line.startswith(prefix)), None)


def cause_sentence(analysis: dict) -> str:
    """The analysis' own verdict as one sentence: its "Cause:" line cut at the
    first full stop after the label, or the line saying there is nothing to explain."""
    explanation = analysis.get("explanation") or ""
    line = explanation_line(explanation, "Cause:")
    if line:
        head, _, rest = line.partition(". ")
        first = rest.partition("; ")[0].partition(". ")[0].rstrip(".")
        return f"{head}: {first[0].lower() + first[1:]}." if first else head + "."
    verdict = (analysis.get("diagnosis") or {}).get("verdict")
    for prefix in ("Every count runs", "Only one GPU count", "This sweep has no succeeded run"):
        found = explanation_line(explanation, prefix)
        if found:
            return found
    return f"The analysis gives no single cause (verdict: {verdict or 'none'})."
