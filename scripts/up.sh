#!/usr/bin/env bash
# Set up, then run the main job on the embedded defaults (storage/ in this folder).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec uv run permeability up "$@"
