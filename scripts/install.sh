#!/usr/bin/env bash
# Installs Scaling Studio into a virtual environment of its own, never into the system's Python:
# .venv in the project folder, or the environment STUDIO_VENV names (one you made, with your own
# CUDA torch, say: that torch is kept). Packages come from the lock (lock/studio.txt, or
# lock/test.txt with the argument "test"); STUDIO_PACKAGES=newest installs the newest versions
# pyproject.toml's ranges allow instead, into a fresh .venv.
#   bash scripts/install.sh [test]
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
case "$extras" in
  "") lock=lock/studio.txt; target=".[gpu]" ;;
  test) lock=lock/test.txt; target=".[test,gpu]" ;;
  *) echo "install: unknown argument '$extras': give nothing, or 'test' for the test extras" >&2; exit 2 ;;
esac
mode="${STUDIO_PACKAGES:-locked}"
case "$mode" in locked|newest) ;; *) echo "install: STUDIO_PACKAGES is '$mode': use locked or newest" >&2; exit 2 ;; esac
python="${PYTHON:-python3}"
venv="${STUDIO_VENV:-$PWD/.venv}"
own=1; [ -n "${STUDIO_VENV:-}" ] && own=0

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x "$venv/bin/python" ] && ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
  # Debian and Ubuntu ship venv's pip bootstrap apart from python3 itself.
  echo "install: $python cannot make a virtual environment; installing Debian's python3-venv"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv >/dev/null
fi

if [ "$own" -eq 1 ] && [ -x "$venv/bin/python" ]; then
  if [ "$mode" = newest ]; then
    echo "install: newest packages: building $venv anew"
    rm -rf "$venv"
  elif ! report="$("$venv/bin/python" scripts/lockcheck.py "$lock" --strict --missing-ok --keep torch 2>&1)"; then
    echo "install: $venv differs from $lock; building it anew:"
    echo "$report" | sed 's/^/  /' | head -20
    rm -rf "$venv"
  fi
fi
if [ ! -x "$venv/bin/python" ]; then
  [ "$own" -eq 0 ] && { echo "install: STUDIO_VENV=$venv has no bin/python: make it with python3 -m venv first" >&2; exit 2; }
  echo "install: making the virtual environment $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --disable-pip-version-check -q)

# A torch already in the environment that is not the lock's (a CUDA build) stays.
locked_torch="$(sed -n 's/^torch==//p' "$lock")"
keep=()
requirements="$(mktemp)" constraints="$(mktemp)"
trap 'rm -f "$requirements" "$constraints"' EXIT
cp "$lock" "$requirements"
cp constraints.txt "$constraints"
if installed="$("$venv/bin/python" -c 'import torch; print(torch.__version__)' 2>/dev/null)" \
    && [ "$installed" != "$locked_torch" ]; then
  echo "install: keeping the installed torch $installed (the lock's is $locked_torch)"
  keep=(--keep torch)
  grep -v '^torch==' "$lock" >"$requirements"
  echo "torch==$installed" >"$constraints"
fi

started=$SECONDS
if [ "$mode" = newest ]; then
  echo "install: the newest packages that pyproject.toml allows (torch pinned by constraints.txt)"
  "${pip[@]}" -c "$constraints" -e "$target"
else
  echo "install: $(grep -c '==' "$requirements") packages from $lock into $venv"
  "${pip[@]}" -r "$requirements"
  "${pip[@]}" --no-deps -e .
  strict=(); [ "$own" -eq 1 ] && strict=(--strict)
  "$venv/bin/python" scripts/lockcheck.py "$lock" "${strict[@]}" "${keep[@]}"
fi
echo "install: done in $((SECONDS - started)) s; start the studio with $venv/bin/studio serve"
