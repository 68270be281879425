#!/usr/bin/env bash
# Ingest throughput: HTTP batches of 100 -> Redis -> projector -> hypertable (deduplicated), for
# 60 s, then the same rows inserted straight into the tables, and the ratio. Needs PostgreSQL and
# Redis on loopback (as the tests do). Extra flags go to `bench ingest` (see -h).
set -euo pipefail
cd "$(dirname "$0")/../.."
go build -o /tmp/vexil-bench ./deploy/telemetry/bench
exec /tmp/vexil-bench ingest -duration 60s -connections 8 -batch 100 "$@"
