#!/usr/bin/env bash
# Installs Scaling Studio (and, with "test", what its tests need) into the current Python.
# A working torch that is already installed (a CUDA build, say) is kept: pip is pinned to it.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
extras="${1:-}"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
if installed="$("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null)"; then
  echo "torch==$installed" >"$constraints"
  echo "install: keeping the installed torch $installed"
else
  cp constraints.txt "$constraints"
fi
target="."
[ -n "$extras" ] && target=".[$extras]"
"$python" -m pip install --disable-pip-version-check -q -c "$constraints" -e "$target"
