"""The correctness gate: does a run generate what the sweep's reference run did?

Within a sweep, each succeeded run is compared, prompt by prompt, with the first
succeeded run that had the same generation settings (model, prompts, dtype, new
tokens, sampling, seed): another GPU count, batch size or layout must not change
greedy output. Token ids are compared, not text, so the first differing token
can be named. Torch-free; the store only writes what comes out of here.
"""

from __future__ import annotations

GENERATION_SETTINGS = ("model", "prompts", "max_new_tokens", "do_sample", "temperature", "top_p", "top_k", "seed",
                       "fixed_length")
MAX_DIFFERENCES = 20  # listed per run; the count covers them all


def generation_key(run: dict) -> tuple:
    """What decides a run's tokens, from its stored row: the run's resolved dtype and its generation settings."""
    config = run.get("config") or {}
    return (run.get("dtype"), *(_hashable(config.get(name)) for name in GENERATION_SETTINGS))


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def reference_for(run: dict, sweep_runs: list[dict]) -> dict | None:
    """The sweep's first succeeded run (by id) with `run`'s generation settings; None when that is `run` itself."""
    key = generation_key(run)
    for other in sorted(sweep_runs, key=lambda r: r["id"]):
        if other.get("status") == "succeeded" and generation_key(other) == key:
            return None if other["id"] == run["id"] else other
    return None


def first_difference(reference: list[int], tokens: list[int]) -> int | None:
    """Position of the first token where the two sequences part, None when equal."""
    for position, (a, b) in enumerate(zip(reference, tokens)):
        if a != b:
            return position
    return None if len(reference) == len(tokens) else min(len(reference), len(tokens))


def compare_outputs(reference: list[dict], outputs: list[dict]) -> dict | None:
    """Agreement of `outputs` with `reference` (output rows with `prompt_index` and
    `token_ids`), or None when either run stored no token ids (older rows)."""
    by_prompt = {o["prompt_index"]: o.get("token_ids") for o in reference}
    compared = identical = 0
    differences = []
    for output in sorted(outputs, key=lambda o: o["prompt_index"]):
        ref, mine = by_prompt.get(output["prompt_index"]), output.get("token_ids")
        if ref is None or mine is None:
            continue
        compared += 1
        position = first_difference(ref, mine)
        if position is None:
            identical += 1
        elif len(differences) < MAX_DIFFERENCES:
            differences.append({"prompt_index": output["prompt_index"], "position": position,
                                "reference_token": ref[position] if position < len(ref) else None,
                                "token": mine[position] if position < len(mine) else None})
    if compared == 0:
        return None
    return {"compared": compared, "identical": identical, "fraction": identical / compared,
            "differences": differences}


def verdict(agreement: float | None, dtype: str | None, do_sample: bool) -> str:
    """'exact', 'expected' (sampling or a 16-bit dtype: other GPU counts and layouts
    change the order of reductions, so tokens may part) or 'check' (greedy float32
    should agree exactly), or '' when nothing was compared."""
    if agreement is None:
        return ""
    if agreement >= 1.0:
        return "exact"
    return "expected" if do_sample or dtype in ("bfloat16", "float16") else "check"


def record_agreement(store, run_id: int, sweep_runs: list[dict] | None = None) -> dict | None:
    """Compare a finished run of a sweep with its reference and store the result.
    `sweep_runs`: the sweep's run rows, when the caller has read them already."""
    if sweep_runs is None:
        rows = store.list_runs(ids=[run_id])
        if not rows or rows[0].get("sweep_id") is None:
            return None
        sweep_runs = (store.get_sweep(rows[0]["sweep_id"]) or {"runs": []})["runs"]
    run = next((r for r in sweep_runs if r["id"] == run_id), None)
    if run is None or run.get("status") != "succeeded":
        return None
    reference = reference_for(run, sweep_runs)
    if reference is None:
        return None
    outputs = store.outputs_for_runs([reference["id"], run_id])
    result = compare_outputs(outputs[reference["id"]], outputs[run_id])
    if result is None:
        return None
    detail = {key: result[key] for key in ("compared", "identical", "differences")}
    store.set_agreement(run_id, result["fraction"], reference["id"], detail)
    return result
