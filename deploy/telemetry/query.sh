#!/usr/bin/env bash
# Stats query at scale: loads 50,000,000 evaluation events over 30 days (a few minutes, ~8 GB
# of disk), refreshes the rollups, and times the console's 30-day hourly stats of one flag from
# the rollup against the raw scan of the same question. Run it again with -skip-load to time
# the queries only. Extra flags go to `bench query` (see -h).
set -euo pipefail
cd "$(dirname "$0")/../.."
go build -o /tmp/vexil-bench ./deploy/telemetry/bench
exec /tmp/vexil-bench query -rows 50000000 "$@"
