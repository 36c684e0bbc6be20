#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build, and run n0stack all-in-one in the
# foreground (facade on 127.0.0.1:20180, embedded store under the data dir, one local agent).
set -euo pipefail
cd "$(dirname "$0")/.."
./hack/install-deps.sh
exec node dist/cli/n0stack.js up "$@"
