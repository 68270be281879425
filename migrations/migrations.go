// Package migrations embeds Vexil's SQL migrations, run by golang-migrate (see
// services/adapters/postgres.Migrate).
//
// The same files work on TimescaleDB and on plain PostgreSQL >= 14: 0001 creates the timescaledb
// extension when the server can load it (preloaded, or already created), and later files branch on
// vexil_has_timescale() inside DO blocks, so on plain PostgreSQL the same relation names exist as
// ordinary tables and materialized views. 0050's vexil_timescale_upgrade() converts a plain-mode
// database later (vexil migrate timescale).
package migrations

import "embed"

// FS holds the *.up.sql and *.down.sql files.
//
//go:embed *.sql
var FS embed.FS
