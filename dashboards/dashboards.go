// Package dashboards holds Vexil's Grafana dashboards (*.json) and the provisioning files that
// load them with a PostgreSQL/TimescaleDB datasource (provisioning/). Every panel reads the
// telemetry rollups, the experiment unit tables or the read models by the names that exist on
// both databases; a test runs every query (Grafana macros expanded) on both.
package dashboards

import "embed"

// FS holds the dashboards and the provisioning files.
//
//go:embed *.json provisioning
var FS embed.FS
