package platform

import (
	"runtime/debug"
	"testing"
)

// The VCS stamps of `go build` are what `vexil version` reports; a build without them (go run,
// -buildvcs=false) still names its module and says "(devel)".
func TestBuildInfoOfReadsTheVCSStamps(t *testing.T) {
	got := buildInfoOf(&debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/vexil-flags/vexil", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "CGO_ENABLED", Value: "0"},
			{Key: "vcs.revision", Value: "6c8ba24aaaa"},
			{Key: "vcs.time", Value: "2026-12-03T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	})
	want := BuildInfo{Module: "github.com/vexil-flags/vexil", Version: "v1.2.3", GoVersion: "go1.26.0",
		Commit: "6c8ba24aaaa", BuildTime: "2026-12-03T10:00:00Z", Modified: true}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	got = buildInfoOf(&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/vexil-flags/vexil"}})
	if got.Version != "(devel)" || got.Commit != "" || got.Modified {
		t.Fatalf("unstamped build: %+v", got)
	}
}
