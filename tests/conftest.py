"""Shared fixtures. One STUDIO_HOME per test session, so the tiny model is built
once; one database per test, so tests never see each other's runs."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Screenshots and pages the browser tests keep for a person to look at: outside the
# working tree, so a test run never leaves a file for git to see.
ARTIFACTS = Path(os.environ.get("STUDIO_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "scaling-studio-test-artifacts")

# A handful of short prompts keeps every real launch to a few seconds on 2 cores.
SHORT_PROMPTS = [
    "The King is dead. Long live the Queen.",
    "It was a bright cold day in April.",
    "I write this sitting in the kitchen sink.",
    "124 was spiteful.",
    "Call me Ishmael.",
    "The sky above the port was the color of television.",
]


@pytest.fixture(scope="session", autouse=True)
def studio_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("studio-home")
    old = os.environ.get("STUDIO_HOME")
    os.environ["STUDIO_HOME"] = str(home)
    os.environ.pop("STUDIO_DB", None)
    # the session's own hardware lock: another test session on this machine is not our job
    os.environ["STUDIO_HARDWARE_LOCK"] = str(home / "hardware.lock")
    yield home
    if old is None:
        os.environ.pop("STUDIO_HOME", None)
    else:
        os.environ["STUDIO_HOME"] = old


def _tree_status() -> str | None:
    """`git status` of the checkout, or None outside a git checkout."""
    try:
        done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


@pytest.fixture(scope="session", autouse=True)
def the_tree_stays_clean():
    """Tests and the commands they run write into temporary folders, never into the
    working tree: a file left there would be committed by the next `git add`."""
    before = _tree_status()
    yield
    after = _tree_status()
    if before is not None and after is not None and after != before:
        new = sorted(set(after.splitlines()) - set(before.splitlines()))
        pytest.fail("the test run changed the working tree: " + "; ".join(new or after.splitlines())[:2000])


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "studio.db"


@pytest.fixture
def prompts() -> list[str]:
    return list(SHORT_PROMPTS)


def find_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    return find_free_port()


def run_cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """`studio ARGS` in a fresh interpreter, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "studio", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def invoke_cli(capsys, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`studio ARGS` called in this process, what run_cli gives back without a fresh
    interpreter's seconds of imports (datasette's CliRunner habit): only for commands
    that start no server and launch nothing. What a fresh process would not carry
    from one call to the next is put back: the environment (a command may set a
    variable, serve does), the working folder, and the look at the hardware, taken
    again as a new process would under `env`'s CUDA_VISIBLE_DEVICES."""
    from runner.host.hardware import detect
    from studio.cli import main

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.update(env or {})
    os.chdir(ROOT)
    detect.cache_clear()
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's refusals and --help end the way the interpreter ends them
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        detect.cache_clear()
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["studio", *args], code, out, err)


@pytest.fixture
def cli(capsys):
    """`cli(*args, env=None)`: `studio ARGS` in process, see invoke_cli."""
    return functools.partial(invoke_cli, capsys)


def tiny_loader():
    """(a function that loads a fresh fp32 `tiny` model, its left-padding tokenizer):
    for tests that call `generate` in process, one thread so timings are steady."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from runner.models import tiny_path
    from runner.tiny import ensure_tiny

    torch.set_num_threads(1)
    folder = ensure_tiny(tiny_path())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"

    def load():
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()

    return load, tokenizer


def beyond_the_cap() -> int:
    """A process count this machine refuses for its default device, read from the
    inventory: 8 CPU processes are fine on a 64-core host, and 2 too many on a 1-GPU one."""
    from runner.host.hardware import detect

    inventory = detect()
    return inventory.max_processes(inventory.default_device) + 1


# The page and the API have no device choice: a server the tests start sees no GPU,
# so its runs are CPU processes on any host.
CPU_ONLY_ENV = {"CUDA_VISIBLE_DEVICES": "", "HIP_VISIBLE_DEVICES": ""}


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def store(db_path):
    """A real store on the test's own database file."""
    from db.store import Store

    return Store(db_path)


@pytest.fixture
def page_sees_no_gpu(monkeypatch):
    """The page has no device choice, so its forms plan CPU processes on any host."""
    from runner.host.hardware import detect

    for key, value in CPU_ONLY_ENV.items():
        monkeypatch.setenv(key, value)
    detect.cache_clear()
    yield
    detect.cache_clear()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does: "
                    "apt-get install chromium); the browser test must run, not skip")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def analysis_tab_page(browser, store, tmp_path):
    """The Analysis tab (beside another tab, as on the page) served on a free port and
    opened in Chromium; yields the page and the list of its JavaScript errors."""
    import gradio as gr

    from studio.web.analysis_tab import build_analysis_tab
    from studio.web.app import CSS, theme

    with gr.Blocks() as demo:
        with gr.Tab("Runs"):
            gr.Markdown("another tab")
        build_analysis_tab(store, tmp_path)
    port = find_free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True, css=CSS, theme=theme())
    try:
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_role("tab", name="Analysis").click()
        yield page, errors
    finally:
        demo.close()
