package redisstream_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/adapters/redisstream"
	"github.com/vexil-flags/vexil/services/adapters/redisstream/redistest"
)

// Each persistence setting is read from a redis-server of the test's own, configured so; with
// CONFIG renamed away (managed Redis), INFO persistence still tells whether AOF is on.
func TestInspectPersistence(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		args    []string
		want    redisstream.Persistence
		warning string // substring; "" for none
	}{
		{name: "none", want: redisstream.Persistence{ConfigReadable: true, AppendFsync: "everysec"},
			warning: "no persistence"},
		{name: "rdb only", args: []string{"--save", "60 1"},
			want:    redisstream.Persistence{ConfigReadable: true, AppendFsync: "everysec", Save: "60 1"},
			warning: "RDB snapshots only"},
		{name: "aof everysec", args: []string{"--appendonly", "yes"},
			want: redisstream.Persistence{ConfigReadable: true, AOF: true, AppendFsync: "everysec"}},
		{name: "aof always", args: []string{"--appendonly", "yes", "--appendfsync", "always"},
			want: redisstream.Persistence{ConfigReadable: true, AOF: true, AppendFsync: "always"}},
		{name: "aof no fsync", args: []string{"--appendonly", "yes", "--appendfsync", "no"},
			want:    redisstream.Persistence{ConfigReadable: true, AOF: true, AppendFsync: "no"},
			warning: "appendfsync no"},
		{name: "config disabled, aof off", args: []string{"--rename-command", "CONFIG", ""},
			want: redisstream.Persistence{}, warning: "CONFIG GET is not allowed"},
		{name: "config disabled, aof on", args: []string{"--rename-command", "CONFIG", "", "--appendonly", "yes"},
			want: redisstream.Persistence{AOF: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.StartServer(t, c.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := redisstream.InspectPersistence(ctx, srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
			w := got.Warning()
			if (c.warning == "") != (w == "") || !strings.Contains(w, c.warning) {
				t.Fatalf("warning %q, want one containing %q", w, c.warning)
			}
		})
	}
}
