package platform

import (
	"context"
	"strings"
	"time"
)

// Storage describes what this process runs on, for the start-up log line and /readyz.
type Storage struct {
	Mode        string `json:"mode"` // "timescaledb" or "postgresql"
	PostgreSQL  string `json:"postgresql"`
	TimescaleDB string `json:"timescaledb,omitempty"`
	Redis       string `json:"redis"`
}

// describeStorage asks the database and Redis for their versions. What cannot be read is left
// empty: a start-up log line must never stop the start.
func (p *Platform) describeStorage(ctx context.Context) Storage {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s := Storage{Mode: "postgresql"}
	_ = p.Pool.QueryRow(ctx, `SELECT current_setting('server_version')`).Scan(&s.PostgreSQL)
	var ts *string
	if err := p.Pool.QueryRow(ctx, `SELECT (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb')`).Scan(&ts); err == nil && ts != nil {
		s.TimescaleDB = *ts
	}
	// The schema decides the mode (hypertables or plain tables), not the extension's presence.
	var hasTimescale bool
	if err := p.Pool.QueryRow(ctx, `SELECT vexil_has_timescale()`).Scan(&hasTimescale); err == nil && hasTimescale {
		s.Mode = "timescaledb"
	}
	if info, err := p.Redis.Info(ctx, "server").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				s.Redis = v
			}
		}
	}
	return s
}
