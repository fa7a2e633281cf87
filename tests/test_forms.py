"""The Run tab's form and the API's start_sweep without a browser: values in, a
validated plan or a refusal named at its field out."""

from __future__ import annotations

import pytest
from rowkit import request

from runner.config import ConfigError
from studio.web import forms

pytestmark = pytest.mark.usefixtures("page_sees_no_gpu")


def test_a_good_form_becomes_a_plan_with_counts_in_order():
    plan = forms.plan_request(request())
    assert plan.gpu_counts == [1, 2]
    assert plan.base.prompts == ("Call me Ishmael.", "The King is dead.")
    assert plan.base.max_new_tokens == 8 and plan.base.batch_size == 4


def test_gradio_floats_are_taken_as_whole_numbers():
    plan = forms.plan_request(request(batch_size=4.0, max_new_tokens=8.0, repeats=2.0, gpu_counts="1"))
    assert plan.base.batch_size == 4 and plan.repeats == 2


@pytest.mark.parametrize("changes, field, words", [
    ({"prompts_text": "  \n "}, "prompts", "no prompts"),
    ({"max_new_tokens": 0}, "max_new_tokens", "at least 1"),
    ({"max_new_tokens": None}, "max_new_tokens", "is empty"),
    ({"batch_size": 2.5}, "batch_size", "whole number"),
    ({"gpu_counts": []}, "gpu_counts", "tick at least one"),
    ({"gpu_counts": ["999"]}, "gpu_counts", "at most"),
    ({"repeats": 0}, "repeats", "from 1 to"),
    ({"model": "-rf"}, "model", "starts with '-'"),
    ({"model": "arch:nope"}, "model", "unknown architecture"),
    ({"mode": "turbo"}, "mode", "must be one of"),
    ({"dtype": "int3"}, "dtype", "must be one of"),
])
def test_bad_settings_are_named_next_to_their_field(changes, field, words):
    problems = forms.check_request(request(**changes))
    assert list(problems) == [field]
    assert words in problems[field]
    with pytest.raises(ConfigError):
        forms.plan_request(request(**changes))


def test_an_uploaded_file_wins_over_the_text_box(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "from the file"}\n{"prompt": "second"}\n')
    plan = forms.plan_request(request(prompts_file=str(path)))
    assert plan.base.prompts == ("from the file", "second")
    assert forms.prompt_summary("ignored", str(path)).startswith("2 prompt(s) from the file p.jsonl")


def test_a_broken_file_is_reported_at_the_prompts(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("text\nhello\n")
    problems = forms.check_request(request(prompts_file=str(path)))
    assert "no 'prompt' column" in problems["prompts"]


def test_the_preset_is_the_reference_posts_hundred_prompts():
    assert len(forms.preset_text().splitlines()) == 100
    plan = forms.plan_request(request(prompts_text="", preset="seed"))
    assert len(plan.base.prompts) == 100


def test_api_prompts_may_be_jsonl_text():
    plan = forms.plan_request(request(prompts_text='{"prompt": "a"}\n{"prompt": "b"}', prompts_format="jsonl"))
    assert plan.base.prompts == ("a", "b")


def test_the_gpu_count_choices_follow_the_machine(monkeypatch):
    from runner.host.hardware import Inventory

    four_gpus = Inventory(gpu_count=4, gpu_names=("NVIDIA H100",) * 4, gpu_memory_mib=(81559,) * 4, cpu_cores=32)
    monkeypatch.setattr(forms, "detect", lambda: four_gpus)
    choices = forms.device_choices()
    assert (choices["device"], choices["max"], choices["counts"]) == ("cuda", 4, [1, 2, 3, 4])
    assert choices["what"] == "GPUs"
    # no GPU: CPU processes, at least 8 and two a core
    monkeypatch.setattr(forms, "detect", lambda: Inventory(gpu_count=0, gpu_names=(), gpu_memory_mib=(), cpu_cores=6))
    choices = forms.device_choices()
    assert (choices["device"], choices["max"], choices["counts"]) == ("cpu", 12, list(range(1, 13)))
    assert "no GPU" in choices["what"]


def test_the_model_box_offers_allowed_folders_and_cached_hub_ids(tmp_path, monkeypatch):
    folder = tmp_path / "models" / "my-llama"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (tmp_path / "models" / "not-a-model").mkdir()
    hub = tmp_path / "hub"
    (hub / "models--org--name").mkdir(parents=True)
    (hub / "datasets--org--data").mkdir()
    monkeypatch.setenv("STUDIO_MODEL_DIRS", str(tmp_path / "models"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
    choices = forms.model_choices()
    assert choices[0] == "tiny" and "arch:llama-2-7b" in choices
    assert str(folder) in choices and "org/name" in choices
    assert not any("not-a-model" in c or "data" in c for c in choices)


def test_a_synthetic_sweep_of_one_count_stores_the_prompts_it_runs():
    # a one-cell sweep kept the base's single "(synthetic)" stand-in: "1 prompts" and 1 round
    plan = forms.plan_request(request(prompts_text="", prompt_tokens="16", num_prompts=8, batch_size=4,
                                      gpu_counts=["1"], max_new_tokens=8))
    assert len(plan.prepared) == 1 and len(plan.prepared[0].config.prompts) == 8
    assert plan.settings()["num_prompts"] == 8
    # two lengths of the same count, and the text box's prompts, are counted the same way
    grid = forms.plan_request(request(prompts_text="", prompt_tokens="16,32", num_prompts=8, gpu_counts=["1"]))
    assert grid.settings()["num_prompts"] == 8
    assert forms.plan_request(request()).settings()["num_prompts"] == 2


def test_the_prompt_line_names_synthetic_prompts_when_they_replace_the_box():
    line = forms.prompt_summary("a\nb\nc", None, "16", 8)
    assert line.startswith("8 synthetic prompts of 16 tokens") and "text box" in line
    assert forms.prompt_summary("a\nb\nc", None, "16,32", 8).startswith("8 synthetic prompts of 16, 32 tokens")
    assert forms.prompt_summary("a\nb\nc", None, "", 8).startswith("3 prompt(s) from the text box")


def test_the_page_names_settings_by_their_labels_not_their_flags_or_parameters():
    """The CLI says --max-new-tokens and the API max_new_tokens; the page says what its field says."""
    from studio.analysis.cost import parse_price
    from studio.web import history
    from studio.web.page_kit import error_text

    line = forms.grid_summary(request(max_new_tokens="16,x"))
    assert line.startswith("⚠ Max new tokens: 'x' is not a whole number"), line
    assert forms.prompt_summary("", None, "16", "x").startswith("⚠ How many synthetic prompts: must be a whole")
    with pytest.raises(ConfigError) as caught:
        history.history_filters(since="yesterday")
    assert error_text(caught.value).startswith("⚠ From date (UTC): 'yesterday' is not a date")
    assert forms.field_message(caught.value).startswith("since:")  # the API keeps its parameter's name
    with pytest.raises(ConfigError) as caught:
        parse_price("free")
    assert "--" not in caught.value.message  # shown by the page's Cost panel too
