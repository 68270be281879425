package platform_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/adapters/redisstream/redistest"
	"github.com/vexil-flags/vexil/services/platform"
	"github.com/vexil-flags/vexil/services/platform/config"
	"github.com/vexil-flags/vexil/services/testkit"
)

// One start-up line says what the process runs on: storage mode, PostgreSQL, TimescaleDB (when
// there) and Redis versions, and the roles.
func TestStartupLineNamesStorageAndVersions(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse("test", []string{"--database-url", pgtest.NewDatabase(t), "--redis-url", redistest.URL(),
		"--stream-prefix", redistest.NewPrefix(t), "--http-addr", "127.0.0.1:0", "--admin-token", adminToken,
		"--roles", "console,api"}, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var logs testkit.SyncBuffer
	p, err := platform.Open(context.Background(), cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "vexil started" {
			continue
		}
		pg, _ := rec["postgresql"].(string)
		redis, _ := rec["redis"].(string)
		roles, _ := rec["roles"].([]any)
		if rec["storage"] != "postgresql" || pg == "" || redis == "" || len(roles) != 2 {
			t.Fatalf("start-up line: %s", line)
		}
		return
	}
	t.Fatalf("no start-up line in\n%s", logs.String())
}
