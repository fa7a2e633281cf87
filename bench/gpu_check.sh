#!/usr/bin/env bash
# One-shot GPU acceptance check for a machine with one GPU (an H100 or H200).
#
#   bash bench/gpu_check.sh            # run it: about 5-8 minutes with the install
#   bash bench/gpu_check.sh --dry-run  # print the plan and exit 0 (no GPU needed)
#
# Runs `studio doctor`, then 1-GPU runs of `tiny` and of `arch:llama-2-7b` in
# bfloat16 on the reference post's workload (100 prompts, 100 new tokens,
# --fixed-length) in `batched` batch 16 and in `auto`. Checks each run succeeded
# on cuda with device peak memory, bandwidth utilisation and energy filled, and
# that auto beat batched; writes a Markdown block for docs/performance.md to
# $GPU_CHECK_OUT (default bench/results/gpu-check-<date>.md). Exits non-zero on
# any failure.
#
# Packages: the GPU image has torch, transformers and accelerate but not
# sqlite-utils (the store) nor nvidia-ml-py (the energy counter). Wheels in
# ./.whl (see docs/performance.md, "GPU acceptance check", for the download
# command) are installed into /tmp/site first; without them pip is asked.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown option $arg (use --dry-run or nothing)" >&2; exit 2 ;;
  esac
done

STAMP="$(date -u +%Y-%m-%d)"
OUT="${GPU_CHECK_OUT:-bench/results/gpu-check-$STAMP.md}"
if [ "$DRY_RUN" = 1 ]; then
  WORK="${GPU_CHECK_WORK:-/tmp/gpu-check.XXXXXX}"  # a dry run creates nothing
else
  WORK="${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu-check.XXXXXX)}"
fi
DB="$WORK/studio.db"
export STUDIO_HOME="$WORK/home"
COMMON=(--gpus 1 --device cuda --db "$DB" --json --timeout 600)
POST=(--preset seed --max-new-tokens 100 --fixed-length --dtype bfloat16)
STEPS=(
  "tiny|--model tiny --max-new-tokens 32 --name tiny"
  "7b-batched|--model arch:llama-2-7b ${POST[*]} --mode batched --batch-size 16 --name 7b-batched"
  "7b-auto|--model arch:llama-2-7b ${POST[*]} --mode auto --name 7b-auto"
)

plan() {
  echo "GPU acceptance check: plan"
  echo "  0. install what the image lacks: .whl/*.whl into /tmp/site if present, else pip (sqlite-utils, nvidia-ml-py)"
  echo "  1. python3 -m studio doctor"
  local i=2
  for step in "${STEPS[@]}"; do
    echo "  $i. python3 -m studio run ${step#*|} ${COMMON[*]}"
    i=$((i + 1))
  done
  echo "  $i. python3 -m bench.gpu_check $DB $OUT: every run succeeded on cuda; device peak memory,"
  echo "     bandwidth utilisation and energy filled; auto beat batched; Markdown block written to $OUT"
}

if [ "$DRY_RUN" = 1 ]; then
  plan
  echo "dry run: nothing was run"
  exit 0
fi

plan
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: FAILED: no NVIDIA GPU here (nvidia-smi missing or failing); use --dry-run to see the plan" >&2
  exit 1
fi

if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! python3 -c "import sqlite_utils" 2>/dev/null; then
  python3 -m pip install -q sqlite-utils || { echo "gpu_check: FAILED: sqlite-utils missing; bring it as a wheel in .whl" >&2; exit 1; }
fi
python3 -c "import pynvml" 2>/dev/null || python3 -m pip install -q nvidia-ml-py \
  || echo "gpu_check: nvidia-ml-py missing: energy will be null and the check will fail on it" >&2

mkdir -p "$WORK" "$(dirname "$OUT")"
status=0
python3 -m studio doctor || { echo "gpu_check: FAILED: studio doctor" >&2; status=1; }
for step in "${STEPS[@]}"; do
  label="${step%%|*}"
  # shellcheck disable=SC2086  # the step's options are words on purpose
  if ! python3 -m studio run ${step#*|} "${COMMON[@]}" >"$WORK/$label.json" 2>"$WORK/$label.err"; then
    echo "gpu_check: FAILED: $label (stderr tail below)" >&2
    tail -20 "$WORK/$label.err" >&2
    status=1
  fi
done

MACHINE="$(python3 - <<'PY'
import json, subprocess, datetime
import torch, transformers
smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                     capture_output=True, text=True).stdout.strip().splitlines()
name, driver = (smi[0].split(", ") + ["?"])[:2] if smi else ("?", "?")
print(json.dumps({"gpu": name, "driver": driver, "cuda": torch.version.cuda, "torch": torch.__version__,
                  "transformers": transformers.__version__, "date": datetime.date.today().isoformat()}))
PY
)"
python3 -m bench.gpu_check "$DB" "$OUT" "$MACHINE" || status=1
echo "gpu_check: runs and logs in $WORK; Markdown block in $OUT"
exit "$status"
