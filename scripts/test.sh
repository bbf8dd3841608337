#!/usr/bin/env bash
# Set up and run the whole check: lint, format, types, and every test (unit, integration, e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
bash scripts/setup-browser.sh
bash scripts/setup-multihost.sh
uv run ruff check .
uv run ruff format --check .
uv run mypy
uv run lint-imports --no-cache
uv run pytest "$@"
