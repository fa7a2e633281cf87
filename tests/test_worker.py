"""The worker under a real `accelerate launch`, 1 and 2 processes, on tiny."""

import pytest

from runner.config import RunConfig
from runner.host.launcher import launch
from runner.host.validate import prepare

pytestmark = pytest.mark.slow

PROMPTS = [
    "The King is dead. Long live the Queen.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
    "124 was spiteful.",
    "I write this sitting in the kitchen sink.",
    "Call me Ishmael.",
]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = {}
    for mode in ("simple", "batched"):
        for n in (1, 2):
            config = RunConfig(prompts=PROMPTS, mode=mode, gpus_per_node=n, batch_size=2, max_new_tokens=12,
                               device="cpu", dtype="float32")
            events = []
            out[mode, n] = (launch(prepare(config), tmp_path_factory.mktemp(f"{mode}{n}"), on_event=events.append),
                            events)
    return out


@pytest.mark.parametrize("mode", ["simple", "batched"])
def test_two_processes_really_split_the_prompts(results, mode):
    result, events = results[mode, 2]
    assert result.status == "succeeded" and result.world_size == 2
    ranks = {o["rank"] for o in result.outputs}
    assert ranks == {0, 1}
    assert [r["num_prompts"] for r in result.ranks] == [3, 2]
    pids = {e["pid"] for e in events if e["event"] == "started"}
    assert len(pids) == 2  # two real processes


@pytest.mark.parametrize("mode", ["simple", "batched"])
@pytest.mark.parametrize("n", [1, 2])
def test_each_prompt_exactly_once_in_order(results, mode, n):
    result, _ = results[mode, n]
    assert [o["prompt_index"] for o in result.outputs] == list(range(len(PROMPTS)))
    assert [o["prompt"] for o in result.outputs] == PROMPTS


@pytest.mark.parametrize("mode", ["simple", "batched"])
def test_greedy_fp32_outputs_do_not_depend_on_the_split(results, mode):
    one, _ = results[mode, 1]
    two, _ = results[mode, 2]
    assert [o["output"] for o in two.outputs] == [o["output"] for o in one.outputs]


def test_simple_and_batched_generate_the_same_text(results):
    # both modes tokenise the same way; left padding must not change greedy output
    assert [o["output"] for o in results["simple", 1][0].outputs] == [
        o["output"] for o in results["batched", 1][0].outputs
    ]


@pytest.mark.parametrize("mode", ["simple", "batched"])
@pytest.mark.parametrize("n", [1, 2])
def test_throughput_is_real_tokens_over_the_slowest_rank(results, mode, n):
    result, _ = results[mode, n]
    assert result.tokens == sum(o["tokens"] for o in result.outputs) > 0
    assert result.raw_tokens >= result.tokens
    slowest = max(r["seconds"] for r in result.ranks)
    assert result.seconds == slowest
    assert result.tokens_per_second == pytest.approx(result.tokens / slowest)


def test_per_rank_figures_and_progress(results):
    result, events = results["batched", 2]
    for rank in result.ranks:
        assert rank["tokens"] > 0 and rank["seconds"] > 0 and rank["peak_memory_bytes"] > 0
        phases = [s["phase"] for s in rank["timeline"]]
        assert {"load", "warmup", "barrier", "generate"} <= set(phases)
    progress = [e for e in events if e["event"] == "progress"]
    assert {e["rank"] for e in progress} == {0, 1}
    assert max(e["done"] for e in progress if e["rank"] == 0) == 3


def test_environment_fingerprint(results):
    env = results["batched", 1][0].environment
    node = env["nodes"][0]
    assert node["versions"]["torch"] and node["versions"]["transformers"] and node["versions"]["accelerate"]
    assert node["cpu_cores"] >= 1 and node["hostname"]
    assert "git_commit" in env and env["launcher"]["hostname"]


def test_a_static_cache_run_through_the_worker_matches_plain(results, tmp_path):
    # batches of 2, 2, 1: the worker's warm-up and timed batches share the run's cache pool
    config = RunConfig(prompts=PROMPTS, mode="batched", batch_size=2, max_new_tokens=12, device="cpu",
                       dtype="float32", cache="static")
    result = launch(prepare(config), tmp_path)
    assert result.status == "succeeded", result.error
    assert [o["output"] for o in result.outputs] == [o["output"] for o in results["batched", 1][0].outputs]
    assert all(o["ttft_ms"] > 0 and o["latency_ms"] >= o["ttft_ms"] for o in result.outputs)


def test_fixed_length_generates_exactly_max_new_tokens(tmp_path):
    config = RunConfig(prompts=PROMPTS[:2], device="cpu", max_new_tokens=7, fixed_length=True, warmup=False)
    result = launch(prepare(config), tmp_path)
    assert [o["tokens"] for o in result.outputs] == [7, 7]


def test_world_size_mismatch_fails_the_run(tmp_path):
    """A worker started with fewer processes than its job asks for refuses to run."""
    import json
    import subprocess

    from runner.host.launcher import build_job, build_launch_command, free_port

    asked = prepare(RunConfig(prompts=PROMPTS[:2], device="cpu", gpus_per_node=2, max_new_tokens=4))
    started = prepare(RunConfig(prompts=PROMPTS[:2], device="cpu", gpus_per_node=1, max_new_tokens=4))
    job, cfg = tmp_path / "job.json", tmp_path / "accelerate.yaml"
    job.write_text(json.dumps(build_job(asked, tmp_path / "result.json")))
    command = build_launch_command(started, job_path=job, config_path=cfg, port=free_port())
    cfg.write_text(command.accelerate_config)
    proc = subprocess.run(command.argv, env=command.env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "world size is 1, the run asked for 2" in proc.stdout
    assert not (tmp_path / "result.json").exists()
