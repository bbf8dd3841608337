#!/usr/bin/env bash
# Install what the project needs on a fresh machine of this kind (idempotent, quick when done).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
fi
export UV_LINK_MODE=copy
uv sync --frozen --quiet
export MLFLOW_DISABLE_TELEMETRY=true
