#!/usr/bin/env bash
# The GPU acceptance run of issue 21: one command, at most 10 minutes on one H200.
#
#   bash bench/gpu_check.sh            # run it; one JSON into bench/results/gpu_check-<gpu>-<date>.json
#   bash bench/gpu_check.sh --dry-run  # print the plan with each step's estimated minutes (no GPU needed)
#
# Steps (bench/gpu_check.py plans and judges them, bench/gpu_probes.py runs them):
# studio doctor with web packages optional; arch:llama-2-7b from config at batch 16
# x 512-token prompts, 100 new tokens, timed by the old logits-processor clock, CUDA
# events and the studio's TokenClock in one generate (fails when the studio's TTFT is
# more than 5 % off the events'); a one-rank NCCL all-reduce under the profiler;
# --cache static --compile with CUDA-graph records counted after warm-up (0 expected);
# plain vs static cache memory; energy per token from NVML. Exit 0 only when every
# verdict passes.
#
# Packages: the GPU machine has no network. What the image lacks (bench/gpu_check.py
# NEEDS) comes as wheels in .whl/ (bash bench/gpu_wheels.sh fetches them where pip
# works) and is installed from there with --no-index, never from an index; when
# everything needed imports already, nothing is installed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

case "${1:-}" in
  --dry-run)
    "$PY" -m bench.gpu_check plan || exit 1
    echo "dry run: nothing was run"
    exit 0 ;;
  -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
  "") ;;
  *) echo "gpu_check: unknown option $1 (use --dry-run or nothing)" >&2; exit 2 ;;
esac

if ! "$PY" -m bench.gpu_check needs; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "gpu_check: FAILED: packages missing and no wheels in .whl/ (run bash bench/gpu_wheels.sh where pip" \
         "works and carry .whl); nothing is fetched from an index here" >&2
    exit 1
  fi
  SITE="$(mktemp -d /tmp/gpu-check-site.XXXXXX)"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .whl/*.whl \
    || { echo "gpu_check: FAILED: installing the carried wheels" >&2; exit 1; }
  export PYTHONPATH="$PWD:$SITE${PYTHONPATH#"$PWD"}"
  "$PY" -m bench.gpu_check needs || { echo "gpu_check: FAILED: the carried wheels do not cover NEEDS" >&2; exit 1; }
fi

# the run writes its JSON after every step, so a stop at the limit keeps what was measured
exec timeout --signal=INT 570 "$PY" -m bench.gpu_check run --out bench/results
