package redisstream

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Persistence is what a Redis server keeps across a restart, as far as it tells. The telemetry
// path answers 202 once Redis holds a batch, so it depends on it (README, Operations: Redis
// persistence).
type Persistence struct {
	// AOF is the append-only file (appendonly yes).
	AOF bool
	// AppendFsync is the AOF's fsync policy: always, everysec or no; "" when unknown.
	AppendFsync string
	// Save is the RDB snapshot schedule ("3600 1 300 100 60 10000"); "" when there is none.
	Save string
	// ConfigReadable is false when CONFIG GET is refused (managed Redis often disables or renames
	// it): then AOF comes from INFO persistence and Save and AppendFsync are unknown.
	ConfigReadable bool
}

// InspectPersistence asks Redis how it persists: CONFIG GET, or INFO persistence where CONFIG is
// not allowed.
func InspectPersistence(ctx context.Context, client redis.UniversalClient) (Persistence, error) {
	values, err := client.ConfigGet(ctx, "*").Result()
	if err == nil && values["appendonly"] != "" {
		return Persistence{AOF: values["appendonly"] == "yes", AppendFsync: values["appendfsync"],
			Save: strings.TrimSpace(values["save"]), ConfigReadable: true}, nil
	}
	info, ierr := client.Info(ctx, "persistence").Result()
	if ierr != nil {
		return Persistence{}, fmt.Errorf("redisstream: persistence unknown: CONFIG GET: %v; INFO persistence: %w", err, ierr)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "aof_enabled:"); ok {
			return Persistence{AOF: v == "1"}, nil
		}
	}
	return Persistence{}, errors.New("redisstream: persistence unknown: CONFIG GET refused and INFO persistence has no aof_enabled")
}

// Warning says, in an operator's words, what a Redis restart or crash would lose of what was
// acknowledged; "" when the setting keeps it (AOF with fsync always or everysec).
func (p Persistence) Warning() string {
	const lost = "telemetry batches already answered 202 and not yet stored"
	switch {
	case p.AOF && p.AppendFsync == "no":
		return "Redis AOF has appendfsync no: a machine crash can lose about the last 30 s of " + lost + "; use everysec or always (see README, Operations)"
	case p.AOF:
		return ""
	case !p.ConfigReadable:
		return "Redis AOF is off (INFO persistence) and CONFIG GET is not allowed, so RDB snapshots could not be checked: a restart may lose " + lost + "; enable appendonly (see README, Operations)"
	case p.Save != "":
		return fmt.Sprintf("Redis persists by RDB snapshots only (save %q): a crash loses the %s since the last snapshot; enable appendonly (see README, Operations)", p.Save, lost)
	default:
		return "Redis has no persistence (appendonly no, no RDB save points): a restart loses the " + lost + "; enable appendonly (see README, Operations)"
	}
}
