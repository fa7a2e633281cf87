"""Length-aware batching: fewer padded positions, original order restored."""

from __future__ import annotations

import random

import pytest

from runner.batching import make_batches, padded_positions


def test_sorted_batches_pad_less_than_unsorted():
    rng = random.Random(0)
    lengths = [rng.randint(32, 1024) for _ in range(48)]
    plain = make_batches(range(48), 16, lengths)
    ordered = make_batches(range(48), 16, lengths, sort_by_length=True)
    assert sorted(i for b in ordered for i in b) == list(range(48))
    assert padded_positions(ordered, lengths) < padded_positions(plain, lengths) / 2


def test_no_padding_to_multiples():
    # one batch of equal lengths pads nothing (the reference pads to a multiple of 8)
    assert padded_positions(make_batches(range(4), 4, [13] * 4, sort_by_length=True), [13] * 4) == 0


def test_sorting_needs_lengths():
    import pytest

    with pytest.raises(ValueError):
        make_batches(range(3), 2, None, sort_by_length=True)


@pytest.mark.slow
def test_a_sorted_run_returns_outputs_in_the_original_order(db_path, prompts):
    """End to end: sorted batching on 2 ranks, outputs come back by prompt index."""
    from conftest import run_cli

    proc = run_cli("run", "--gpus", "2", "--device", "cpu", "--max-new-tokens", "4", "--batch-size", "2", "--sort-by-length",
                   "--prompts", str(_write(db_path.parent / "p.txt", prompts)), "--db", str(db_path), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    from db.store import Store

    run = Store(db_path).list_runs()[0]
    stored = Store(db_path).get_run(run["id"])
    assert [o["prompt_index"] for o in stored["outputs"]] == list(range(len(prompts)))
    assert [o["prompt"] for o in stored["outputs"]] == prompts


def _write(path, prompts):
    path.write_text("\n".join(prompts))
    return path
