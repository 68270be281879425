#!/usr/bin/env bash
# Exactly once under SIGKILL: posts 1,000,000 events over HTTP while the projector runs as a
# child process (`vexil serve --roles projector`), kills it with SIGKILL at 30% and 65% of the
# run and starts it again, then checks that every accepted event is stored once and that the
# derived tables (goal attributions, per-user goal sums) agree with the raw ones. Exits non-zero
# on any difference. Extra flags go to `bench sigkill` (see -h).
set -euo pipefail
cd "$(dirname "$0")/../.."
go build -o /tmp/vexil-bench ./deploy/telemetry/bench
go build -o /tmp/vexil-bench-server ./services/vexil
exec /tmp/vexil-bench sigkill -events 1000000 -vexil /tmp/vexil-bench-server "$@"
