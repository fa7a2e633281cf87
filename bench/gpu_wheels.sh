#!/usr/bin/env bash
# Fetch into .whl/ the wheels bench/gpu_check.sh installs on a GPU machine that has no
# network (its image: Python 3.12, torch, accelerate, nvidia-ml-py, click, tabulate,
# python-dateutil, pluggy, hf-xet; older transformers). Versions are lock/studio.txt's.
# Run where pip reaches an index; carry .whl (ignored by git) with the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
# transformers 5.25 needs a newer huggingface-hub (which needs httpx2, httpcore2, a newer hf-xet and
# click) and kernels than the image has; the rest of their needs are in the image
PACKAGES=(sqlite-utils sqlite-fts4 click-default-group transformers huggingface-hub tokenizers kernels
          httpx2 httpcore2 hf-xet click tomlkit truststore idna)
pins=()
for name in "${PACKAGES[@]}"; do
  pin="$(grep -i "^$name==" lock/studio.txt | head -1 | cut -d' ' -f1)"
  [ -n "$pin" ] || { echo "gpu_wheels: $name is not in lock/studio.txt" >&2; exit 1; }
  pins+=("$pin")
done
mkdir -p .whl
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "${pins[@]}"
ls -la .whl
