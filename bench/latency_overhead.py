"""What per-request latency capture costs: the same run with the token clock on and
off, side by side in one invocation, repetitions interleaved.

    python -m bench.latency_overhead [--repeats 5] [--batch-size 16] [--max-new-tokens 64]

Each run is its own `accelerate launch` of `tiny` (1 CPU process, the post's 100
prompts, fixed length); the table shows median tokens/s with min-max and the
ratio of the medians. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.config import RunConfig  # noqa: E402
from runner.host.launcher import launch  # noqa: E402
from runner.host.prompts import preset  # noqa: E402
from runner.host.validate import prepare  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--mode", default="batched")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="latency-overhead-"))
    samples: dict[str, list[float]] = {"latency on": [], "latency off": []}
    for rep in range(args.repeats):
        order = list(samples) if rep % 2 == 0 else list(reversed(samples))  # neither always goes first
        for name in order:
            config = RunConfig(prompts=preset("seed"), model="tiny", device="cpu", mode=args.mode,
                               batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, fixed_length=True,
                               latency=name == "latency on")
            result = launch(prepare(config), work / f"{name.replace(' ', '-')}-{time.time_ns()}")
            if result.status != "succeeded":
                raise SystemExit(f"{name}: {result.error}")
            samples[name].append(result.tokens_per_second)
            print(f"repeat {rep + 1} {name}: {result.tokens_per_second:.1f} tokens/s"
                  + (f", TTFT p50 {result.latency['ttft_ms_p50']:.1f} ms" if result.latency else ""), flush=True)
    print("\n| variant | median tokens/s | min-max |\n| --- | --- | --- |")
    for name, values in samples.items():
        print(f"| {name} | {statistics.median(values):.1f} | {min(values):.1f}-{max(values):.1f} |")
    ratio = statistics.median(samples["latency on"]) / statistics.median(samples["latency off"])
    # each repeat ran both back to back: its own ratio cancels drift on a shared machine
    pairs = [on / off for on, off in zip(samples["latency on"], samples["latency off"])]
    print(f"\nlatency on / off: {ratio:.3f} (medians), {statistics.median(pairs):.3f} (median of the "
          f"{len(pairs)} per-repeat ratios, range {min(pairs):.3f}-{max(pairs):.3f}); cost "
          f"{(1 - statistics.median(pairs)) * 100:+.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
