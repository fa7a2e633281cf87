"""Files `studio import` must not trust: empty, cut off, damaged, unknown, huge (100 MB,
refused from its size before a byte is read), or hostile (links out of a folder, a
FIFO, NaN, YAML aliases, HTML in labels). Each is refused with its file's name and
what to change, or stored safely, and a refusal leaves nothing half-stored."""

from __future__ import annotations

import json
import os
import time
import tracemalloc

import pytest
from conftest import ROOT

from db.store import Store
from studio.exchange.peers.detail import comparison_markdown, origin_rows, safe
from studio.exchange.peers.importer import LabelError, import_paths, parse_labels
from studio.exchange.peers.record import PeerFileError

FIXTURES = ROOT / "tests" / "fixtures" / "peers"
GUIDELLM = FIXTURES / "guidellm-0.8.1-concurrent" / "benchmarks.json"


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "studio.db")
    yield store
    store.close()


def nothing_stored(store: Store) -> bool:
    return all(store.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] == 0
               for t in ("sweeps", "runs", "outputs", "imports"))


def refused(store: Store, path, *expected: str) -> str:
    with pytest.raises(PeerFileError) as caught:
        import_paths(store, [path])
    message = str(caught.value)
    assert message.startswith(f"{path.name}: nothing imported: "), message
    assert str(path.parent) not in message  # a name, never the server path it was found at
    for words in expected:
        assert words in message, message
    assert nothing_stored(store)
    return message


def test_an_empty_file_is_refused(store, tmp_path):
    (tmp_path / "benchmarks.json").write_text("")
    refused(store, tmp_path / "benchmarks.json", "is empty", "run the benchmark again")


def test_a_truncated_file_is_refused_as_cut_off(store, tmp_path):
    text = GUIDELLM.read_text()
    (tmp_path / "benchmarks.json").write_text(text[: len(text) // 2])
    refused(store, tmp_path / "benchmarks.json", "is not complete JSON", "cut off (truncated)")
    lines = (FIXTURES / "aiperf-0.13.0-errors/artifacts/profile_export.jsonl").read_text()
    (tmp_path / "profile_export.jsonl").write_text(lines[: len(lines) - 200])
    refused(store, tmp_path / "profile_export.jsonl", "line 8", "cut off")


@pytest.mark.parametrize("name, content, words", [
    ("unknown.json", {"model": "x", "numbers": [1, 2]}, "not a results file the studio knows"),
    ("list.json", [1, 2, 3], "a list of 3 item(s)"),
    ("damaged.json", {"metadata": {"version": 2}, "benchmarks": [
        {"requests": {"successful": [{"info": {"timings": {"request_start": "soon"}}}]}}]}, "not a number"),
    ("nan.json", {"metadata": {"version": 2}, "benchmarks": [
        {"requests": {"successful": [{"info": {"timings": {"request_start": float("nan")}}}]}}]}, "not a finite"),
    ("empty-guidellm.json", {"metadata": {"version": 2}, "benchmarks": []}, "holds no benchmarks"),
    ("short-arrays.json", {"backend": "openai", "completed": 2, "duration": 1.0, "ttfts": [0.1],
                           "itls": [[], []], "latencies": [1, 1], "start_times": [0, 1], "output_lens": [3, 3]},
     "differ in length"),
    ("warmup-only.json", {"config": {"model_name": "m", "benchmark_kind": "Rate"},
                          "results": [{"id": "warmup"}]}, "only a warm-up"),
])
def test_malformed_and_unknown_files_are_refused_with_the_reason(store, tmp_path, name, content, words):
    (tmp_path / name).write_text(json.dumps(content))
    refused(store, tmp_path / name, words)


def test_a_100_mb_file_is_refused_from_its_size_without_being_read(store, tmp_path):
    huge = tmp_path / "benchmarks.json"
    with open(huge, "wb") as handle:
        handle.truncate(100 * 2**20)  # 100 MB, sparse: no time spent writing it
    tracemalloc.start()
    started = time.perf_counter()
    refused(store, huge, "is 100 MiB; the limit is 64 MiB")
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 0.5 and peak < 8 * 2**20


def test_links_fifos_and_binary_files_are_refused(store, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "benchmarks.json").symlink_to(GUIDELLM)
    refused(store, folder, "holds a symbolic link (benchmarks.json)", "copy the files in")
    os.mkfifo(tmp_path / "pipe.json")
    refused(store, tmp_path / "pipe.json", "is a FIFO")
    (tmp_path / "blob.json").write_bytes(b"\x00\x01binary")
    refused(store, tmp_path / "blob.json", "is binary")
    (tmp_path / "latin1.json").write_bytes('{"caf\xe9": 1}'.encode("latin-1"))
    refused(store, tmp_path / "latin1.json", "is not UTF-8")


def test_yaml_aliases_and_deep_nesting_are_refused(store, tmp_path):
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nbenchmarks: [*c]\n"
    (tmp_path / "benchmarks.yaml").write_text(bomb)
    refused(store, tmp_path / "benchmarks.yaml", "anchors or aliases")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    refused(store, tmp_path / "deep.json", "nested too deeply")


def test_a_bad_path_among_good_ones_stores_nothing(store, tmp_path):
    (tmp_path / "empty.json").write_text("")
    with pytest.raises(PeerFileError, match="empty.json: nothing imported"):
        import_paths(store, [GUIDELLM, FIXTURES / "vllm-0.34.0/serve-detailed.json", tmp_path / "empty.json"])
    assert nothing_stored(store)


def test_a_failure_while_storing_leaves_nothing_half_stored(store, monkeypatch):
    import db.imports

    real = db.imports._stored
    calls = {"n": 0}

    def failing(value):
        calls["n"] += 1
        if calls["n"] > 40:  # after the sweep, the import and the first run went in
            raise RuntimeError("disk full")
        return real(value)

    monkeypatch.setattr(db.imports, "_stored", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        import_paths(store, [GUIDELLM])
    assert nothing_stored(store)


def test_html_in_labels_and_file_fields_is_stored_as_text_and_shown_escaped(store, tmp_path):
    data = json.loads(GUIDELLM.read_text())
    data["config"]["metadata"]["labels"] = {"note": "<img src=x onerror=alert(1)>", "gpu": "<b>H100</b>|x"}
    data["benchmarks"][0]["config"]["backend"]["model"] = "<script>alert(1)</script>"
    hostile = tmp_path / "benchmarks.json"
    hostile.write_text(json.dumps(data))
    report, = import_paths(store, [hostile], parse_labels(["engine=<i>vllm</i>"]))
    run = store.get_run(report.run_ids[0])
    assert run["model"] == "<script>alert(1)</script>"  # kept as the file wrote it
    shown = "\n".join(f"{k} {v}" for k, v in origin_rows(run)) + comparison_markdown(run)
    assert "<img" not in shown and "<b>" not in shown and "<i>" not in shown and "&lt;img" in shown
    assert "\\|x" in shown  # a table cell cannot be broken out of
    from studio.web.views import run_summary_parts
    page = "\n".join(run_summary_parts(run))
    assert "<script>" not in page and "read-only import" in page and "Imported from" in page


@pytest.mark.parametrize("label, words", [
    ("gpus", "is not key=value"), ("gpus=eight", "whole number"), ("gpus=0", "whole number"),
    ("note=a\x1bb", "control characters"), ("<x>=1", "is not key=value"), (f"k={'v' * 201}", "over 200"),
])
def test_bad_labels_are_refused_with_what_to_write(label, words):
    with pytest.raises(LabelError, match=words):
        parse_labels([label])


def test_safe_text_escapes_markdown_and_html():
    assert safe("[x](javascript:alert(1)) <b>|") == "\\[x\\]\\(javascript:alert\\(1\\)\\) &lt;b&gt;\\|"
