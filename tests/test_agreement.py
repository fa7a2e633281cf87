"""The correctness gate's arithmetic (studio/sweeps/agreement.py): pure, fast."""

from studio.sweeps.agreement import compare_outputs, first_difference, generation_key, reference_for, verdict


def out(index, ids):
    return {"prompt_index": index, "token_ids": ids}


def test_first_difference_is_the_first_position_where_tokens_part():
    assert first_difference([1, 2, 3], [1, 2, 3]) is None
    assert first_difference([1, 2, 3], [1, 9, 3]) == 1
    assert first_difference([1, 2, 3], [1, 2]) == 2  # one stopped early (an EOS)


def test_agreement_counts_identical_prompts_and_names_each_first_differing_token():
    reference = [out(0, [5, 6, 7]), out(1, [5, 6, 7]), out(2, [8, 8]), out(3, [1])]
    run = [out(0, [5, 6, 7]), out(1, [5, 4, 7]), out(2, [8, 8]), out(3, [2])]
    result = compare_outputs(reference, run)
    assert (result["compared"], result["identical"], result["fraction"]) == (4, 2, 0.5)
    assert result["differences"] == [
        {"prompt_index": 1, "position": 1, "reference_token": 6, "token": 4},
        {"prompt_index": 3, "position": 0, "reference_token": 1, "token": 2},
    ]


def test_rows_without_token_ids_are_not_compared():
    assert compare_outputs([out(0, None)], [out(0, [1])]) is None
    assert compare_outputs([out(0, [1]), out(1, None)], [out(0, [1]), out(1, [2])])["compared"] == 1


def row(run_id, status="succeeded", dtype="float32", **config):
    settings = {"model": "tiny", "prompts": ["a", "b"], "max_new_tokens": 8, "do_sample": False, "seed": 0,
                **config}
    return {"id": run_id, "status": status, "dtype": dtype, "config": settings, "sweep_id": 1}


def test_the_reference_is_the_sweeps_first_succeeded_run_with_the_same_generation_settings():
    runs = [row(1, status="failed"), row(2, gpus_per_node=1), row(3, gpus_per_node=2, tp_size=2),
            row(4, max_new_tokens=16), row(5, dtype="bfloat16")]
    assert reference_for(runs[2], runs)["id"] == 2  # the layout is not a generation setting
    assert reference_for(runs[1], runs) is None  # the reference itself
    assert reference_for(runs[3], runs) is None  # other new tokens: its own reference
    assert reference_for(runs[4], runs) is None  # another dtype: its own reference
    assert generation_key(runs[1]) == generation_key(runs[2])


def test_a_shortfall_is_worth_a_look_only_under_greedy_float32():
    assert verdict(1.0, "float32", False) == "exact"
    assert verdict(0.97, "float32", False) == "check"
    assert verdict(0.97, "bfloat16", False) == "expected"
    assert verdict(0.48, "float32", True) == "expected"
    assert verdict(None, "float32", False) == ""
