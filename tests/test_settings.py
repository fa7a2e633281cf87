"""One declaration of the run settings (studio.sweeps.settings): the CLI's flags, the
Run tab's fields and /start_sweep's parameters are built from it, whole numbers are
read by runner.config alone, and a click on Run plans its sweep once."""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import re
from types import SimpleNamespace

import pytest
from rowkit import request
from test_structure import modules

from runner.config import ConfigError
from studio.sweeps import plan as planning
from studio.sweeps import settings
from studio.sweeps.settings import API, CLI, FORM, SETTINGS, WHOLE, Setting, SweepRequest
from studio.web import forms

pytestmark = pytest.mark.usefixtures("page_sees_no_gpu")


def cli_names() -> set[str]:
    parser = argparse.ArgumentParser()
    SweepRequest.add_cli_args(parser)
    return {action.dest for action in parser._actions} - {"help"}


def api_names() -> list[str]:
    from studio.web.api import start_sweep_endpoint

    return list(inspect.signature(start_sweep_endpoint(supervisor=None)).parameters)


def page_ids(store) -> set[str]:
    """The elem_ids of the Run tab's inputs, as the page builds them."""
    import gradio as gr

    from studio.web.run_tab import build_run_tab

    supervisor = SimpleNamespace(status=lambda sweep_id: None, queue=lambda: [])
    with gr.Blocks():
        ui = build_run_tab(supervisor, store)
    return {getattr(ui, name).elem_id for name in forms.FORM_FIELDS}


def declared(where: str, attribute: str = "name") -> set[str]:
    return {getattr(s, attribute) for s in SETTINGS if where in s.where}


def test_the_cli_the_form_and_the_api_offer_what_the_declaration_says(store):
    assert cli_names() == {s.key for s in SETTINGS if CLI in s.where}
    assert set(forms.FORM_FIELDS) == declared(FORM)
    assert page_ids(store) == {s.form_id for s in SETTINGS if FORM in s.where}
    assert set(api_names()) == declared(API)
    # every setting is offered somewhere, each name once
    assert len({s.name for s in SETTINGS}) == len(SETTINGS) and all(s.where for s in SETTINGS)


def test_the_api_keeps_its_positional_order_and_the_tp_size_name():
    # clients send start_sweep's values as a list: the order is the API's contract
    assert api_names() == ["prompts", "preset", "model", "mode", "batch_size", "max_new_tokens", "fixed_length", "dtype",
                           "gpu_counts", "repeats", "name", "prompts_format", "prompt_tokens", "num_prompts", "slo",
                           "tp_size", "launch",
                           # the server scenario's (issue 26), added after the offline ones
                           "scenario", "engine", "url", "profile", "rates", "concurrency", "endpoint",
                           "requests_per_load"]
    parser = argparse.ArgumentParser()
    SweepRequest.add_cli_args(parser)
    # --tp is kept beside --tp-size, so commands written before still run
    assert parser.parse_args(["--tp", "1,2"]).tp_size == parser.parse_args(["--tp-size", "1,2"]).tp_size == "1,2"


@pytest.fixture
def one_more_setting(monkeypatch):
    """A setting added to the declaration, and nowhere else."""
    extra = Setting("warp_factor", WHOLE, 1, "how far to warp the sweep", config=None)
    monkeypatch.setattr(settings, "SETTINGS", (*SETTINGS, extra))
    monkeypatch.setitem(settings.BY_NAME, extra.name, extra)
    monkeypatch.setattr(settings, "SweepRequest", settings.request_class())
    importlib.reload(forms)  # its field list is read from the declaration once, on import
    yield extra
    monkeypatch.undo()
    importlib.reload(forms)


def test_a_setting_added_to_the_declaration_reaches_the_cli_the_form_and_the_api(one_more_setting, store):
    assert "warp_factor" in cli_names()
    assert "warp_factor" in forms.FORM_FIELDS and "warp-factor" in page_ids(store)
    assert "warp_factor" in api_names()
    assert settings.SweepRequest(warp_factor=3).warp_factor == 3


def test_a_refusal_is_shown_at_the_field_of_its_setting():
    # each form field takes its own refusals and those the declaration says it shows
    for setting in forms.FORM_SETTINGS:
        for field in (setting.name, setting.error_field, *setting.shows):
            assert forms.form_field(ConfigError(field, "x")) == setting.name
    assert forms.form_field(ConfigError("gpus", "x")) == "gpu_counts"
    assert forms.form_field(ConfigError("device", "x")) == "dtype"


# --- one parser for whole numbers -------------------------------------------------------------

# Modules that read numbers out of what the machine prints or holds, never out of a user's
# settings: nvidia-smi and /proc (hardware, planner), torchrun's logs and the ranks' tagged lines;
# and the rank side (runner.rank), whose settings arrive as RunConfig JSON and whose RANK is torchrun's.
# Other tools' result files (studio.exchange.peers) are machine output too: GuideLLM, AIPerf, vLLM and
# inference-benchmarker wrote them, and a number they hold wrongly is refused as a damaged file.
MACHINE_TEXT = {"runner.host.hardware", "runner.host.failures", "runner.host.launch_streams", "runner.planner",
                "studio.exchange.peers.dispatch", "studio.exchange.peers.guidellm", "studio.exchange.peers.record",
                "studio.exchange.peers.inference_benchmarker", "studio.exchange.peers.vllm"}
TEXT_METHODS = {"strip", "lstrip", "rstrip", "split", "rsplit", "group", "groups", "replace", "getenv", "read", "decode"}
DIGIT_PATTERN = re.compile(r"\\d|\[0-9\]|\[\\d")


def int_of_text(node: ast.AST) -> bool:
    """int(...) of a string method's result, or str.isdigit() and its kin."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in ("isdigit", "isdecimal", "isnumeric")
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "int" and node.args):
        return False
    return any(isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute)
               and (inner.func.attr in TEXT_METHODS or "environ" in ast.unparse(inner.func))
               for inner in ast.walk(node.args[0]))


def test_whole_numbers_are_read_from_text_by_runner_config_alone():
    found = []
    for name, tree in modules().items():
        if name == "runner.config" or name in MACHINE_TEXT or name.startswith("runner.rank."):
            continue
        for node in ast.walk(tree):
            if int_of_text(node):
                found.append(f"{name}:{node.lineno}: int() of text")
            elif isinstance(node, ast.keyword) and node.arg == "type" and getattr(node.value, "id", "") == "int":
                found.append(f"{name}:{node.lineno}: argparse type=int")
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and DIGIT_PATTERN.search(node.value)
                  and name != "studio.cli.cluster"):  # cluster: a Slurm time limit, checked and kept as text
                found.append(f"{name}:{node.lineno}: a pattern of digits")
            elif (isinstance(node, ast.FunctionDef) and "whole" in node.name and not any(
                    isinstance(call, ast.Call) and getattr(call.func, "id", "") in ("whole", "whole_list")
                    for call in ast.walk(node))
                  and node.returns is not None and "int" in ast.unparse(node.returns)):
                found.append(f"{name}:{node.lineno}: {node.name} reads whole numbers itself")
    assert not found, "parse whole numbers with runner.config.whole / whole_list:\n" + "\n".join(found)


def test_the_machine_text_modules_exist():
    assert MACHINE_TEXT <= set(modules())


# --- a click plans once ---------------------------------------------------------------------------

@pytest.fixture
def counted(monkeypatch):
    calls = []
    real = planning.plan_sweep

    def plan_sweep(*args, **kwargs):
        calls.append(kwargs.get("axes"))
        return real(*args, **kwargs)

    monkeypatch.setattr(planning, "plan_sweep", plan_sweep)
    return calls


def test_the_run_tab_refuses_in_its_handler_and_starts_with_one_plan(counted, store):
    """Gradio's validator answers a refusal with an HTTP 422, which the browser logs as an error
    (issue 24 item 8): the click's own handler marks the field instead, and plans once."""
    import gradio as gr

    from studio.web.run_tab import build_run_tab

    submitted = []
    supervisor = SimpleNamespace(status=lambda sweep_id: None, queue=lambda: [], cancel=lambda sweep_id: False,
                                 submit=lambda plan: submitted.append(plan) or 5)
    with gr.Blocks() as demo:
        ui = build_run_tab(supervisor, store)
    click = next(f for f in demo.fns.values() if f.fn is not None and f.fn.__name__ == "start")
    assert click.validator is None
    values = [component.value for component in (getattr(ui, name) for name in forms.FORM_FIELDS)]
    at = forms.FORM_FIELDS.index("max_new_tokens")
    values[at] = "0"
    refused = click.fn(*values)
    marks = refused[-1 - len(forms.FORM_FIELDS):-1]
    assert marks[at]["info"] == "must be at least 1, got 0" and marks[at]["elem_classes"] == ["studio-invalid"]
    assert all(m["elem_classes"] == [] for i, m in enumerate(marks) if i != at)
    assert refused[-1] == "⚠ Max new tokens: must be at least 1, got 0" and not submitted
    values[at] = "4"
    started = click.fn(*values)
    assert len(counted) == 1 and len(submitted) == 1 and submitted[0].base.max_new_tokens == 4  # planned once
    assert started[-1 - len(forms.FORM_FIELDS) + at]["info"] == settings.BY_NAME["max_new_tokens"].help_text
    assert started[-1].startswith("Grid: 2 GPUs = 2 cell(s)")


def test_the_page_leaves_the_public_api_names_to_the_api(db_path):
    """A private event named like an endpoint would push the endpoint to a name such as stop_sweep_1."""
    from studio.sweeps.supervisor import Supervisor
    from studio.web.app import build_app

    supervisor = Supervisor(str(db_path))
    try:
        app = build_app(supervisor, str(db_path))
    finally:
        supervisor.shutdown()
    public = {f.api_name for f in app.fns.values() if f.api_visibility != "private"}
    assert public == {"start_sweep", "sweep_status", "stop_sweep", "list_runs", "list_sweeps", "get_run", "delete_runs",
                      "export_runs", "compare", "analyse_sweep", "predict", "recommend", "import_results"}
