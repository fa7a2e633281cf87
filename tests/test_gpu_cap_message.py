"""Every GPU count past the machine's cap gets the same message naming the cap, not
RunConfig's bound of 64 under the field's internal name (issue 27 item 9)."""

from __future__ import annotations

import pytest
from conftest import beyond_the_cap

from runner.config import ConfigError, RunConfig
from studio.sweeps.plan import plan_sweep


@pytest.mark.parametrize("counts", ["{cap}", "65", "1,65", "1000"])
def test_counts_past_the_cap_name_the_machine(counts):
    cap = beyond_the_cap() - 1
    counts = counts.format(cap=cap + 1)
    with pytest.raises(ConfigError) as refused:
        plan_sweep(RunConfig(prompts=["a"]), counts)
    assert refused.value.field == "gpus"
    assert f"this machine allows at most {cap}; lower the count" in refused.value.message
