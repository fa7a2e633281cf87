"""One validation for every entry point: the same hostile input is refused by the
sweep planner, by the page/API handler and by the CLI, with the same field and
words, before anything is stored or launched."""

from __future__ import annotations

import os

import pytest
from conftest import beyond_the_cap

from db.store import Store
from runner.config import LIMITS, ConfigError, RunConfig, redact_paths
from runner.host.prompts import MAX_FILE_BYTES, load_prompts
from studio.sweeps.plan import plan_sweep
from studio.web import forms

OK = "Call me Ishmael."

# (name, planner kwargs, handler SweepRequest kwargs, CLI args, field, words in the message)
HOSTILE = [
    ("huge max new tokens", dict(max_new_tokens=10**9), dict(max_new_tokens=10**9),
     ["--max-new-tokens", str(10**9)], "max_new_tokens", f"at most {LIMITS['max_new_tokens']}"),
    ("max new tokens past the context", dict(max_new_tokens=4000), dict(max_new_tokens=4000),
     ["--max-new-tokens", "4000"], "max_new_tokens", "context"),
    ("batch size 0", dict(batch_size=0), dict(batch_size=0), ["--batch-size", "0"], "batch_size", "at least 1"),
    ("huge batch size", dict(batch_size=10**6), dict(batch_size=10**6), ["--batch-size", str(10**6)],
     "batch_size", f"at most {LIMITS['batch_size']}"),
    ("more GPUs than present", dict(gpus=[beyond_the_cap()]), dict(gpu_counts=str(beyond_the_cap())),
     ["--gpus", str(beyond_the_cap())], "gpus",
     "allows at most"),
    ("too many repeats", dict(repeats=1000), dict(repeats=1000), ["--repeats", "1000"], "repeats", "1 to"),
    ("model id that is a flag", dict(model="--trust_remote_code"), dict(model="--trust_remote_code"),
     ["--model=--trust_remote_code"], "model", "starts with '-'"),
    ("model id with a shell command", dict(model="; rm -rf ~"), dict(model="; rm -rf ~"),
     ["--model", "; rm -rf ~"], "model", "characters a model id cannot have"),
    ("model id with command substitution", dict(model="$(reboot)"), dict(model="$(reboot)"),
     ["--model", "$(reboot)"], "model", "characters a model id cannot have"),
    ("model id climbing out", dict(model="../../etc"), dict(model="../../etc"), ["--model", "../../etc"],
     "model", "no config.json"),
    ("model id with a newline", dict(model="tiny\nx"), dict(model="tiny\nx"), ["--model", "tiny\nx"],
     "model", "characters a model id cannot have"),
]


def _plan(gpus=(1,), repeats=1, prompts=(OK,), **changes):
    return plan_sweep(RunConfig(prompts=list(prompts), **changes), list(gpus), repeats)


@pytest.mark.parametrize("name, planner, request_kwargs, cli, field, words", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_planner_and_page_handler_refuse_the_same_way(name, planner, request_kwargs, cli, field, words):
    with pytest.raises(ConfigError) as direct:
        _plan(**planner)
    with pytest.raises(ConfigError) as handled:
        forms.plan_request(forms.SweepRequest(prompts_text=OK, **request_kwargs))
    assert direct.value.field == handled.value.field == field
    assert words in direct.value.message and words in handled.value.message


@pytest.mark.parametrize("index", [0, 4, 6, 7, 8], ids=[HOSTILE[i][0] for i in (0, 4, 6, 7, 8)])
def test_the_cli_refuses_the_same_way_and_stores_nothing(index, db_path, tmp_path, cli):
    name, _, _, flags, field, words = HOSTILE[index]
    prompts = tmp_path / "p.txt"
    prompts.write_text(OK + "\n")
    proc = cli("run", "--prompts", str(prompts), *flags, "--db", str(db_path))
    assert proc.returncode == 2, proc.stderr
    assert f"studio: error: {field}:" in proc.stderr and words in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not db_path.exists() or Store(db_path).list_runs() == []


def test_prompt_limits_count_and_length():
    with pytest.raises(ConfigError, match=f"more than the limit of {LIMITS['num_prompts']}"):
        RunConfig(prompts=[OK] * (LIMITS["num_prompts"] + 1))
    with pytest.raises(ConfigError, match=f"the limit is {LIMITS['prompt_chars']}"):
        RunConfig(prompts=["x" * (LIMITS["prompt_chars"] + 1)])
    with pytest.raises(ConfigError) as exc:  # under the length limit, but longer than tiny's context
        _plan(prompts=["x" * 4000], max_new_tokens=8)
    assert exc.value.field == "max_new_tokens" and "context" in exc.value.message
    with pytest.raises(ConfigError, match="prompts"):
        forms.plan_request(forms.SweepRequest(prompts_text="\n".join([OK] * (LIMITS["num_prompts"] + 1))))


def test_prompt_files_over_the_size_limit_are_refused_unread(tmp_path):
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:  # sparse: the size is what matters, and it is never read
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ConfigError, match="larger than 20 MiB"):
        load_prompts(big)
    with pytest.raises(ConfigError, match="larger than 20 MiB"):
        forms.plan_request(forms.SweepRequest(prompts_file=str(big)))
    with pytest.raises(ConfigError, match="larger than 20 MiB"):
        forms.collect_prompts("x" * (MAX_FILE_BYTES + 1))


def test_trust_remote_code_only_with_the_server_flag(monkeypatch):
    monkeypatch.delenv("STUDIO_TRUST_REMOTE_CODE", raising=False)
    with pytest.raises(ConfigError) as exc:
        _plan(trust_remote_code=True)
    assert exc.value.field == "trust_remote_code" and "--trust-remote-code" in exc.value.message
    assert RunConfig(prompts=[OK]).trust_remote_code is False  # off by default
    monkeypatch.setenv("STUDIO_TRUST_REMOTE_CODE", "1")  # what `studio serve --trust-remote-code` sets
    assert _plan(trust_remote_code=True).prepared[0].config.trust_remote_code is True


def test_allowed_model_folders_keep_other_local_paths_out(tmp_path, monkeypatch):
    allowed, outside = tmp_path / "models", tmp_path / "elsewhere"
    for folder in (allowed / "m", outside / "m"):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text('{"max_position_embeddings": 128}')
    monkeypatch.setenv("STUDIO_MODEL_DIRS", str(allowed))
    assert _plan(model=str(allowed / "m"), max_new_tokens=8).prepared[0].model.kind == "local"
    for sneaky in (str(outside / "m"), str(allowed / ".." / "elsewhere" / "m")):
        with pytest.raises(ConfigError, match="outside the model folders"):
            _plan(model=sneaky, max_new_tokens=8)


def test_messages_for_remote_users_name_no_server_folder(monkeypatch, tmp_path):
    home = os.path.expanduser("~")
    monkeypatch.setenv("STUDIO_REDACT_PATHS", "1")  # what `studio serve` sets
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ConfigError) as exc:
        _plan(model="org/not-cached")
    assert str(tmp_path) not in str(exc.value) and "$HF_HOME" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        load_prompts(tmp_path / "missing.txt")
    assert str(tmp_path) not in str(exc.value)
    assert home not in redact_paths(f"{home}/.scaling-studio/studio.db")
    monkeypatch.delenv("STUDIO_REDACT_PATHS")  # the CLI's own user still sees where
    with pytest.raises(ConfigError) as exc:
        load_prompts(tmp_path / "missing.txt")
    assert str(tmp_path) in str(exc.value)
