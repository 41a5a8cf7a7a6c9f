#!/usr/bin/env bash
# The main job on the embedded default deck: installs what is missing, checks the installation with
# `prodampi selftest`, then runs every available stage of input_decks/demo.yaml under mpiexec.
#   bash tools/demo.sh [NRANKS] [--run-dir DIR]       (default 2 ranks)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:-2}; shift || true
bash "$repo/tools/setup_env.sh"
venv=${PRODAMPI_VENV:-$repo/.venv}
mpiexec=$(cat "$venv/.prodampi-mpiexec")
"$mpiexec" -n "$n" "$repo/bin/prodampi" selftest
"$mpiexec" -n "$n" "$repo/bin/prodampi" run "$repo/input_decks/demo.yaml" "$@"
"$repo/bin/prodampi" status "$repo/input_decks/demo.yaml" "$@"
