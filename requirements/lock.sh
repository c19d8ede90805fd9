#!/usr/bin/env bash
# Regenerate requirements/lock-cpu-py311.txt: every package of `pip install -e '.[dev]'` pinned,
# with hashes, for CPython 3.11 on Linux x86-64, torch as PyTorch's CPU wheel.
#
#   bash requirements/lock.sh            (needs uv: `pip install uv`, it is in the dev extra)
#
# uv resolves pyproject.toml's ranges to the newest compatible releases. torch's CPU wheel
# (torch==2.13.0+cpu) is not on PyPI: uv takes it from a local wheel folder (TORCH_WHEELS,
# default /opt/wheels) where there is one, else from PyTorch's CPU index, which the lock names so
# that pip finds the same file (same sha256) on any machine. Install with
#   pip install --retries 0 -r requirements/lock-cpu-py311.txt
# (--retries 0: where PyTorch's index is unreachable and torch lies in a local wheel folder, pip
# skips the index at once instead of retrying it for every package).
set -euo pipefail
cd "$(dirname "$0")/.."
out=requirements/lock-cpu-py311.txt
wheels=${TORCH_WHEELS:-/opt/wheels}
links=(--find-links "$wheels")
[ -d "$wheels" ] || links=(--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
uv pip compile pyproject.toml --extra dev --generate-hashes --no-emit-find-links \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 "${links[@]}" \
  --custom-compile-command "bash requirements/lock.sh" --quiet -o "$out.tmp"
{
  sed -n '/^#/!q;p' "$out.tmp"
  echo "# torch's CPU wheel (+cpu) is not on PyPI: pip finds it (the same file, the same sha256) here."
  echo "--extra-index-url https://download.pytorch.org/whl/cpu"
  sed -n '/^[^#]/,$p' "$out.tmp"
} > "$out"
rm "$out.tmp"
echo "wrote $out ($(grep -c '^[a-z]' "$out") packages)"
