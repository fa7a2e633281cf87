"""What a grid sweep shows beyond GPU count: the Pareto front of throughput per
GPU against speed per user, SLO goodput, and where a larger batch stops paying.
Pure functions of stored rows (RunRows); the medians come from `studio.analysis.stats`."""

from __future__ import annotations

from runner.layout import layout_name
from runner.metrics import goodput
from studio.analysis.stats import SETTING_AXES, Point, describe, scaling_series
from studio.sweeps.slo import meets

SATURATION_GAIN = 0.5  # a batch step that buys less than half its size in tokens/s: the decode stopped being memory-bound


def pareto_points(runs: list[dict]) -> list[dict]:
    """One point per succeeded run with a TPOT: tokens/s per user (1000 / TPOT p50)
    against tokens/s per GPU, with the settings it ran."""
    out = []
    for r in runs:
        if r.get("status") != "succeeded" or not r.get("tokens_per_second") or not r.get("tpot_ms_p50"):
            continue
        out.append({"run_id": r["id"], "gpus": r["world_size"], **{a: r.get(a) for a in SETTING_AXES},
                    "tokens_per_second_per_user": 1000.0 / r["tpot_ms_p50"],
                    "tokens_per_second_per_gpu": r["tokens_per_second"] / r["world_size"]})
    return out


def pareto_front(points: list[dict]) -> list[dict]:
    """The points no other point beats on both axes (more per user and more per GPU),
    ordered by speed per user."""
    front = [p for p in points if not any(
        q["tokens_per_second_per_user"] >= p["tokens_per_second_per_user"]
        and q["tokens_per_second_per_gpu"] >= p["tokens_per_second_per_gpu"]
        and (q["tokens_per_second_per_user"] > p["tokens_per_second_per_user"]
             or q["tokens_per_second_per_gpu"] > p["tokens_per_second_per_gpu"]) for q in points)]
    return sorted(front, key=lambda p: p["tokens_per_second_per_user"])


def goodput_rows(runs: list[dict], outputs_by_run: dict[int, list[dict]], slo: dict) -> list[dict]:
    """Per succeeded run: its goodput under `slo` and whether it meets it; the best
    setting per GPU count (highest median goodput among settings whose runs all meet
    the SLO) is marked `best`."""
    rows = []
    for r in runs:
        if r.get("status") != "succeeded" or not r.get("seconds"):
            continue
        rows.append({"run_id": r["id"], "gpus": r["world_size"], **{a: r.get(a) for a in SETTING_AXES},
                     "goodput": goodput(outputs_by_run.get(r["id"], []), r["seconds"], slo),
                     "tokens_per_second": r["tokens_per_second"], "meets_slo": meets(r, slo), "best": False})
    for gpus in sorted({row["gpus"] for row in rows}):
        settings: dict[tuple, list[dict]] = {}
        for row in rows:
            if row["gpus"] == gpus:
                settings.setdefault(tuple(row[a] for a in SETTING_AXES), []).append(row)
        eligible = {k: v for k, v in settings.items() if all(row["meets_slo"] for row in v)}
        if eligible:
            best = max(eligible, key=lambda k: sorted(r["goodput"] or 0 for r in eligible[k])[len(eligible[k]) // 2])
            for row in eligible[best]:
                row["best"] = True
    return rows


def batch_scaling(runs: list[dict]) -> list[dict]:
    """Per GPU count (and other settings): median tokens/s at each batch size, its gain
    over the previous batch size against the ideal gain (the batch ratio: a memory-bound
    decode step costs the same at any batch), the bandwidth utilisation the roofline
    measured, and the first batch where the gain falls under half the ideal."""
    groups: dict[tuple, dict[int, Point]] = {}
    for series in scaling_series(runs):
        others = tuple((a, series.setting[a]) for a in SETTING_AXES if a != "batch_size")
        for point in series.points:
            groups.setdefault((point.x, others), {})[series.setting["batch_size"]] = point
    out = []
    for (gpus, others), by_batch in sorted(groups.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        if len(by_batch) < 2 or any(b is None for b in by_batch):
            continue
        steps, saturated = [], None
        batches = sorted(by_batch)
        for i, b in enumerate(batches):
            point = by_batch[b]
            median = point.median("tokens_per_second")
            step = {"batch_size": b, "tokens_per_second": median,
                    "bandwidth_utilisation": describe(r.get("bandwidth_utilisation") for r in point.runs)["median"]}
            if i:
                prev = steps[-1]
                step["gain"] = median / prev["tokens_per_second"]
                step["ideal_gain"] = b / prev["batch_size"]
                if saturated is None and step["gain"] - 1 < SATURATION_GAIN * (step["ideal_gain"] - 1):
                    saturated = b
            steps.append(step)
        out.append({"gpus": gpus, "setting": dict(others), "steps": steps, "saturates_at": saturated})
    return out


def describe_batch_scaling(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        steps = row["steps"]
        first, last = steps[0], steps[-1]
        gain = last["tokens_per_second"] / first["tokens_per_second"]
        text = (f"On {row['gpus']} GPU(s), batch {first['batch_size']} -> {last['batch_size']} raised tokens/s "
                f"{first['tokens_per_second']:.1f} -> {last['tokens_per_second']:.1f} "
                f"({gain:.2f}x for {last['batch_size'] / first['batch_size']:g}x the batch)")
        if row["saturates_at"] is not None:
            text += (f"; from batch {row['saturates_at']} a larger batch buys less than half its size in tokens/s: "
                     "the decode step stopped being memory-bound there (each step now costs compute, not just "
                     "reading the weights)")
        else:
            text += "; tokens/s still grows with the batch: the decode step is memory-bound over this range"
        utils = [s["bandwidth_utilisation"] for s in steps if s["bandwidth_utilisation"] is not None]
        if utils:
            text += (". Bandwidth utilisation (roofline): "
                     + ", ".join(f"{s['bandwidth_utilisation']:.0%} at batch {s['batch_size']}" for s in steps
                                 if s["bandwidth_utilisation"] is not None))
        lines.append(text + ".")
    return lines


def describe_goodput(rows: list[dict], slo: dict) -> list[str]:
    """Per GPU count, the best setting that meets the SLO, or that none does."""
    lines = []
    layouts = len({r.get("tp_size") for r in rows}) > 1  # a layout sweep names the layout, not "tp size"
    for gpus in sorted({r["gpus"] for r in rows}):
        best = [r for r in rows if r["gpus"] == gpus and r["best"]]
        if best:
            row = max(best, key=lambda r: r["goodput"] or 0)
            setting = ", ".join(f"{a.replace('_', ' ')} {row[a]}" for a in SETTING_AXES
                                if row.get(a) is not None and a != "tp_size")
            if layouts:
                setting += f" as {layout_name(gpus, row['tp_size'])}"
            lines.append(f"Under the SLO ({slo['name']}), the best setting on {gpus} GPU(s) is {setting}: goodput "
                         f"{row['goodput']:.1f} tokens/s of {row['tokens_per_second']:.1f}.")
        else:
            lines.append(f"Under the SLO ({slo['name']}), no setting on {gpus} GPU(s) meets it at p99.")
    return lines


def grid_summary(runs: list[dict], outputs_by_run: dict[int, list[dict]], slo: dict | None) -> dict:
    """Everything the report and the Analysis tab show of a sweep's grid."""
    points = pareto_points(runs)
    scaling = batch_scaling(runs)
    goodput = goodput_rows(runs, outputs_by_run, slo) if slo else None
    return {"pareto": pareto_front(points), "pareto_points": points, "batch_scaling": scaling,
            "batch_scaling_text": describe_batch_scaling(scaling), "slo": slo, "goodput": goodput,
            "goodput_text": describe_goodput(goodput, slo) if goodput else []}
