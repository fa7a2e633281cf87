"""/import_results against a live server through gradio_client: a GuideLLM file's text
in, its runs listed by tool and scenario, a bad file refused with its name."""

from __future__ import annotations

import pytest
from conftest import ROOT
from live_server import live_server

pytestmark = pytest.mark.slow
FIXTURES = ROOT / "tests" / "fixtures" / "peers"


def test_import_results_over_http(tmp_path, studio_home):
    from conftest import find_free_port
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    with live_server(tmp_path / "studio.db", find_free_port(), tmp_path / "serve.log") as (url, _):
        client = Client(url, verbose=False)
        text = (FIXTURES / "guidellm-0.6.1-poisson" / "benchmarks.json").read_text()
        result = client.predict(files={"benchmarks.json": text}, labels="gpus=2", api_name="/import_results")
        assert result == {"imported": ["benchmarks.json: imported 1 run(s) from guidellm 0.6.1 as sweep 1, run 1"]}
        runs = client.predict(tool="guidellm", scenario="poisson rate 4 req/s", api_name="/list_runs")
        assert [(r["tool"], r["num_gpus"]) for r in runs] == [("guidellm", 2)]
        again = client.predict(files={"benchmarks.json": text}, api_name="/import_results")
        assert "already imported" in again["imported"][0]
        with pytest.raises(AppError, match="empty.json: nothing imported: is empty"):
            client.predict(files={"empty.json": ""}, api_name="/import_results")
