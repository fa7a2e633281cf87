"""Findings of the second black-box run (issue 27, items 1, 4, 5 and part of 9),
pinned down without a server: a two-kilobyte grid that built millions of
combinations, numbers that were not numbers (NaN, Infinity, 1.5, '１', '١', '𝟙'),
an upload's error naming the server's temp folder, and /predict past the limits."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import tracemalloc

import pytest
from conftest import CPU_ONLY_ENV, ROOT
from rowkit import sweep_with_runs

from runner.config import LIMITS, REDACT_ENV, ConfigError
from runner.host.prompts import load_prompts
from studio.analysis.what_if import parse_request
from studio.sweeps import grid
from studio.sweeps import plan as sweep
from studio.sweeps.slo import parse_slo
from studio.web import forms, history, params

pytestmark = pytest.mark.usefixtures("page_sees_no_gpu")
OK = "Call me Ishmael."


def upto(n: int) -> str:
    return ",".join(str(i) for i in range(1, n + 1))


# --- item 1: a grid is counted before it is built ----------------------------------------------------

# the requests: three lists of 100 (873 characters) grew the server by 200 MB, 1..200 new tokens by
# 600 MB more; 1..30000 batch sizes held a core 11.8 s, 1..200000 (1.3 MB) about ten minutes
GRIDS = [
    (dict(gpu_counts=upto(100), batch_size=upto(100), max_new_tokens=upto(100)), "grid", "limit of 200"),
    (dict(gpu_counts=upto(100), batch_size=upto(100), max_new_tokens=upto(200)), "grid", "limit of 200"),
    (dict(batch_size=upto(30_000)), "batch_size", "more than"),
    (dict(batch_size=upto(200_000)), "batch_size", "more than"),
    (dict(batch_size=list(range(1, 30_001))), "batch_size", "more than 200"),
    (dict(gpu_counts=upto(100), tp_size=upto(100), batch_size=upto(100)), "grid", "limit of 200"),
]


@pytest.mark.parametrize("changes, field, words", GRIDS, ids=["3x100", "100x100x200", "30000 batch sizes",
                                                               "200000 batch sizes", "a JSON list of 30000", "tp"])
def test_a_grid_past_the_limit_is_refused_at_once_and_builds_nothing(changes, field, words, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the grid's combinations were built before its size was checked")

    monkeypatch.setattr(sweep, "grid_cells", never)
    tracemalloc.start()
    began = time.perf_counter()
    try:
        with pytest.raises(ConfigError) as refused:
            forms.plan_request(forms.SweepRequest(prompts_text=OK, **changes))
        seconds = time.perf_counter() - began
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.field == field and words in refused.value.message, refused.value
    assert seconds < 1.0, f"took {seconds:.2f} s"
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB"  # the request's own text is 1.3 MB at most


def test_a_grid_is_counted_from_its_lengths_with_the_layouts():
    axes = {"gpus_per_node": [1, 2, 4], "tp_size": [1, 2], "batch_size": [1, 8], "dtype": ["auto", "float32"]}
    assert grid.cell_count(axes) == len(grid.layout_cells(grid.grid_cells(axes), axes)) == 20


def test_duplicates_are_found_in_linear_time(monkeypatch):
    from runner import config

    monkeypatch.setattr(config, "MAX_VALUES", 10**6)
    monkeypatch.setattr(config, "MAX_LIST_CHARS", 10**8)
    began = time.perf_counter()
    with pytest.raises(ConfigError, match="batch_size: lists 7 twice"):
        grid.parse_axis("batch_size", upto(200_000) + ",7")
    assert time.perf_counter() - began < 2.0  # a list scanned per value took ~10 minutes


def test_the_cli_refuses_a_huge_grid_without_growing(tmp_path):
    """Peak memory of the CLI process for the issue's grid against a plain refusal: within 50 MB."""
    script = ("import resource, sys\nfrom studio.cli.commands import main\ncode = main(sys.argv[1:])\n"
              "print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
              "sys.exit(code)\n")
    db = str(tmp_path / "s.db")

    def cli(*args):
        began = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", script, "run", "--preset", "seed", *args, "--db", db],
                              cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, **CPU_ONLY_ENV})
        kib = int(proc.stderr.rsplit("maxrss ", 1)[1].split()[0])
        return proc, kib, time.monotonic() - began

    plain, plain_kib, _ = cli("--batch-size", "0")
    huge, huge_kib, seconds = cli("--gpus", upto(100), "--batch-size", upto(100), "--max-new-tokens", upto(100))
    assert plain.returncode == huge.returncode == 2
    assert "studio: error: grid:" in huge.stderr and "limit of 200" in huge.stderr and "Traceback" not in huge.stderr
    assert huge_kib - plain_kib < 50 * 1024, f"{(huge_kib - plain_kib) / 1024:.0f} MB more"
    assert seconds < 30


# --- item 4: NaN, Infinity, 1e400 and 1.5 are refused with the setting named ------------------------------

@pytest.mark.parametrize("setting", ["batch_size", "max_new_tokens"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, float("1e400"), 2.5])
def test_numbers_that_are_not_whole_are_refused_by_name(setting, value):
    with pytest.raises(ConfigError) as refused:
        forms.plan_request(forms.SweepRequest(prompts_text=OK, **{setting: value}))
    assert refused.value.field == setting and "whole number" in refused.value.message


@pytest.mark.parametrize("value", [math.inf, -math.inf, 1.5, "1.5", "x"])
def test_the_batch_filter_refuses_what_no_run_has(value):
    with pytest.raises(ConfigError, match="^batch_size: must be a whole number"):
        history.history_filters(batch_size=value)
    assert history.history_filters(batch_size=16.0)["batch_size"] == 16


def test_a_utf16_upload_is_refused_naming_the_file_only(tmp_path, monkeypatch):
    monkeypatch.setenv(REDACT_ENV, "1")
    upload = tmp_path / "gradio" / "0123abcd" / "prompts.txt"
    upload.parent.mkdir(parents=True)
    upload.write_text("one\ntwo\n", encoding="utf-16")
    with pytest.raises(ConfigError) as refused:
        load_prompts(upload)
    message = str(refused.value)
    assert "prompts.txt is not UTF-8" in message and "save the file as UTF-8" in message
    assert "gradio" not in message and "$TMPDIR" not in message and str(tmp_path) not in message


# --- item 5: whole numbers are ASCII digits, everywhere ------------------------------------------------

FOREIGN = ["１,２", "١", "𝟙", "١٦", "٢", "१"]


@pytest.mark.parametrize("text", FOREIGN)
def test_digits_that_are_not_ascii_are_refused_by_every_parser(text, store):
    sweep_with_runs(store)
    refusals = []
    for parse in (lambda: grid.parse_axis("gpus_per_node", text),
                  lambda: forms.plan_request(forms.SweepRequest(prompts_text=OK, batch_size=text)),
                  lambda: forms.plan_request(forms.SweepRequest(prompts_text=OK, tp_size=text)),
                  lambda: params.record_id("run_id", text),
                  lambda: history.get_run(store, text),
                  lambda: parse_request(text, None, None, None),
                  lambda: parse_request(None, text, None, None),
                  lambda: history.history_filters(batch_size=text)):
        with pytest.raises(ConfigError) as refused:
            parse()
        refusals.append(refused.value.message)
    assert all("digits 0-9" in m for m in refusals), refusals


def test_runconfig_takes_no_text_for_a_number():
    from runner.config import RunConfig

    with pytest.raises(ConfigError, match="batch_size: must be a whole number"):
        RunConfig(prompts=[OK], batch_size="１")
    assert RunConfig(prompts=[OK], batch_size=8.0).batch_size == 8


@pytest.mark.parametrize("slo", ["ttft=５,tpot=200", "ttft=2000,tpot=٢٠٠"])
def test_an_slo_in_other_digits_is_refused(slo):
    with pytest.raises(ConfigError, match="digits 0-9"):
        parse_slo(slo)


@pytest.mark.parametrize("args", [["--gpus", "１,２"], ["--gpus", "𝟙"], ["--batch-size", "١٦"], ["--tp", "٢"],
                                  ["--slo", "ttft=５,tpot=5"], ["--repeats", "３"]])
def test_the_cli_refuses_other_digits_and_says_what_to_type(args, db_path, cli):
    proc = cli("run", "--preset", "seed", *args, "--db", str(db_path))
    assert proc.returncode == 2 and "0-9" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not db_path.exists() or "sweeps" not in proc.stdout


# --- item 9 (part): /predict within the limits, dtype lists, tp=[] -----------------------------------------

@pytest.mark.parametrize("request_, field", [((None, 1024, 10**6, None), "num_prompts"),
                                             ((None, 1024, None, 10**6), "max_new_tokens"),
                                             ((None, 10**6, None, None), "batch_size"),
                                             (("1,2,1", None, None, None), "gpus")])
def test_predict_refuses_what_a_run_would_refuse(request_, field):
    with pytest.raises(ConfigError) as refused:
        parse_request(*request_)
    assert refused.value.field == field
    assert parse_request("1,2", LIMITS["batch_size"], LIMITS["num_prompts"], LIMITS["max_new_tokens"])["gpus"] == [1, 2]


def test_the_api_takes_a_dtype_list_as_the_cli_does_and_refuses_an_empty_tp():
    plan = forms.plan_request(forms.SweepRequest(prompts_text=OK, dtype="auto,float32", max_new_tokens=8))
    assert [p.config.dtype for p in plan.prepared] == ["auto", "float32"]
    with pytest.raises(ConfigError, match="^tp_size: no value given"):
        forms.plan_request(forms.SweepRequest(prompts_text=OK, tp_size=[]))
