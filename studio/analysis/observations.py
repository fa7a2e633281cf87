"""What each run of a sweep measured, as the what-if model reads it
(`studio.analysis.predict`, whose docstring has the formula): its rounds on the
busiest rank, its seconds per round (from the per-batch timeline when stored), the
fill of its tokens, and the roofline's shape of a round (weight bytes, KV bytes per
token, the mean longest prompt). Pure, no I/O."""

from __future__ import annotations

import math

from studio.analysis.scaling_models import rank_rounds


def batch_of(run: dict) -> int:
    return 1 if run.get("mode") == "simple" else int(run.get("batch_size") or 1)


def observation(run: dict, ranks: list[dict]) -> dict:
    n, b, prompts, steps = run["world_size"], batch_of(run), int(run["num_prompts"]), int(run["max_new_tokens"])
    rounds = max(rank_rounds(prompts, n, b))
    per_round = run["seconds"] / rounds
    spans = []
    if ranks:
        busiest = max(ranks, key=lambda r: r.get("seconds") or 0.0)
        spans = [s["end"] - s["start"] for s in (busiest.get("timeline") or []) if s.get("phase") == "generate"]
    if spans:
        per_round = sum(spans) / len(spans)
    roof = next((r["roofline"] for r in ranks if isinstance(r.get("roofline"), dict)
                 and r["roofline"].get("weight_bytes")), None)
    stored = (run.get("roofline") or {}).get("per_rank") if isinstance(run.get("roofline"), dict) else None
    if roof is None and stored:  # rank rows from the store carry no roofline: the run's per-rank figures do
        roof = next((f for f in stored if f.get("weight_bytes") and f.get("bytes")), None)
        if roof is not None:
            ranks = [{**r, "roofline": roof} if r.get("rank") == roof.get("rank") else r for r in ranks]
    shape = _roof_shape(roof, ranks, b) if roof else _weights_only(run, n, b, prompts, steps)
    tokens, derived = _tokens(run, prompts, steps)
    return {"run": run, "gpus": n, "batch_size": b, "num_prompts": prompts, "max_new_tokens": steps,
            "rounds": rounds, "per_round": per_round, "from_timeline": bool(spans),
            "fill": tokens / (prompts * steps), "tokens_derived": derived, "roofline": shape}


def _tokens(run: dict, prompts: int, steps: int) -> tuple[float, str | None]:
    """The tokens a run generated, and whether they had to be derived. A published sweep
    stores tokens/s and seconds but no count (null), and a count of 0 beside a measured
    rate is a lost count, not an empty run: either read as 0 made every prediction 0 tokens/s."""
    tokens = run.get("tokens")
    if tokens:
        return float(tokens), None
    if (run.get("config") or {}).get("fixed_length"):
        return float(prompts * steps), "fixed"  # every prompt generated exactly max_new_tokens
    return float(run["tokens_per_second"]) * float(run["seconds"]), "rate"


def _roof_shape(roof: dict | None, ranks: list[dict], batch: int) -> dict | None:
    """Weight bytes, KV bytes per token and the mean longest prompt L, recovered from
    a rank's stored bytes: bytes = steps·W + kv·Σ rows·(t·L + t(t−1)/2)."""
    if not roof or not roof.get("kv_bytes_per_token") or not roof.get("decode_steps"):
        return None
    rank = next((r for r in ranks if r.get("roofline") is roof), {})
    rows = rank.get("num_prompts") or batch
    calls = max(1, math.ceil(rows / batch))
    t = roof["decode_steps"] / calls
    # a cache that moves its positions k times a step (runner.roofline.KV_TRAFFIC) costs k x per position;
    # a static cache's whole-buffer reads do not fit this form, so L comes out as an effective length
    kv = roof["kv_bytes_per_token"] * (roof.get("kv_traffic") or 1)
    kv_positions = (roof["bytes"] - roof["decode_steps"] * roof["weight_bytes"]) / kv
    longest = max(0.0, (kv_positions / rows - t * (t - 1) / 2) / t) if t else 0.0
    return {"weight_bytes": roof["weight_bytes"], "kv_bytes_per_token": kv, "prompt_length": longest}


def _weights_only(run: dict, n: int, batch: int, prompts: int, steps: int) -> dict | None:
    """From the run's stored total alone the weight and KV shares cannot be told
    apart: every byte is taken as weights read once per decode step, so a round's
    bytes grow with its steps and not with its rows (the memory-bound regime)."""
    roof = run.get("roofline")
    if not isinstance(roof, dict) or not roof.get("bytes"):
        return None
    decode_steps = sum(rank_rounds(prompts, n, batch)) * steps
    return {"weight_bytes": roof["bytes"] / decode_steps, "kv_bytes_per_token": 0.0, "prompt_length": 0.0,
            "weights_only": True}


def bytes_per_round(shape: dict, batch: int, steps: int) -> float:
    return steps * shape["weight_bytes"] + shape["kv_bytes_per_token"] * batch * (
        steps * shape["prompt_length"] + steps * (steps - 1) / 2)
