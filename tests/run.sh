#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, checks the style, then runs every test in tests/.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python -m pip install -q"
# CPU torch first, pinned: an unpinned torch pulls gigabytes of CUDA wheels
python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
  || $PIP torch==2.13.0
$PIP -r requirements.txt pytest selenium gradio_client hypothesis httpx ruff
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium chromium-driver
fi
python -m ruff check .  # the style check (ruff.toml)
python -m pytest -q tests "$@"
