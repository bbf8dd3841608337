#!/usr/bin/env bash
# Install what the project needs on a fresh machine of this kind (idempotent, quick when done).
# Sourced by up.sh and test.sh, so the exports below apply to what they run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
fi
export UV_LINK_MODE=copy
# Compiled bytecode: mlflow and its friends import in ~1 s instead of ~10 s (and every
# service and test subprocess imports them again).
uv sync --frozen --quiet --compile-bytecode
unset PYTHONDONTWRITEBYTECODE
export MLFLOW_DISABLE_TELEMETRY=true
