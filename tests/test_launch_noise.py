"""A rank's stderr noise stays out of the page's log (issue 24 item 8): a tensor-parallel
run on a GPU machine printed tracing probes ("USDT … profiler_start") among its lines.
Streams reads a real process's stderr here, as the launcher does."""

import subprocess
import sys

from runner.host.launch_streams import Streams

LINES = ["[rank 0] loading tiny", "USDT probe registered: libtorch_cuda.so:profiler_start",
         "[rank 1] USDT: provider pytorch probe profiler_start", "[rank 1] RuntimeError: out of memory"]


def test_noise_lines_are_kept_in_the_file_but_not_shown(tmp_path):
    script = "import sys\n" + "".join(f"print({line!r}, file=sys.stderr)\n" for line in LINES)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shown = []
    streams = Streams(proc, tmp_path, lambda event: shown.append(event["line"]) if event["event"] == "log" else None)
    proc.wait(30)
    streams.join()
    assert shown == ["[rank 0] loading tiny", "[rank 1] RuntimeError: out of memory"]
    assert list(streams.stderr) == shown and streams.rank_tail(1) == "[rank 1] RuntimeError: out of memory"
    assert (tmp_path / "stderr.log").read_text().splitlines() == LINES  # everything, for whoever digs
