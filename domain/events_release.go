package domain

import "time"

// Events of release pipelines. Pipeline stream: pipeline/<project>/<key>; release stream:
// release/<project>/<id>. Every stage event names its stage and environment (the audit files it
// under that environment). Stored forever: add fields, never rename them.

type PipelineCreated struct {
	Project string          `json:"project"`
	Key     string          `json:"key"`
	Name    string          `json:"name"`
	Stages  []PipelineStage `json:"stages"`
}

// ReleaseStarted puts Flag through Pipeline, whose stages are copied: a later change of the
// pipeline does not change a release under way.
type ReleaseStarted struct {
	Project  string          `json:"project"`
	ID       string          `json:"id"`
	Pipeline string          `json:"pipeline"`
	Flag     string          `json:"flag"`
	Stages   []PipelineStage `json:"stages"`
}

// ReleaseStageWaiting: the stage's wait runs until Until.
type ReleaseStageWaiting struct {
	At          time.Time `json:"at"`
	Stage       int       `json:"stage"`
	Environment string    `json:"environment"`
	Until       time.Time `json:"until"`
}

// PipelineAwaitingApproval: the stage waits for a person's approval (a notification: outgoing
// webhooks and the metrics pick it up).
type PipelineAwaitingApproval struct {
	At          time.Time `json:"at"`
	Project     string    `json:"project"`
	Release     string    `json:"release"`
	Pipeline    string    `json:"pipeline"`
	Flag        string    `json:"flag"`
	Stage       int       `json:"stage"`
	Environment string    `json:"environment"`
}

// ReleaseStageApproved: a person approved the stage's gate (the actor is in the metadata).
type ReleaseStageApproved struct {
	At          time.Time `json:"at"`
	Stage       int       `json:"stage"`
	Environment string    `json:"environment"`
}

// ReleaseStageStarted: the stage made its change (turned the flag on, or created Rollout).
type ReleaseStageStarted struct {
	At          time.Time `json:"at"`
	Stage       int       `json:"stage"`
	Environment string    `json:"environment"`
	Rollout     string    `json:"rollout,omitempty"`
}

type ReleaseStageCompleted struct {
	At          time.Time `json:"at"`
	Stage       int       `json:"stage"`
	Environment string    `json:"environment"`
	Outcome     string    `json:"outcome"`
}

type ReleaseStageSkipped struct {
	At          time.Time `json:"at"`
	Stage       int       `json:"stage"`
	Environment string    `json:"environment"`
	Reason      string    `json:"reason,omitempty"`
}

// ReleaseStageFailed: the stage cannot go on (its rollout was aborted); the release fails.
type ReleaseStageFailed struct {
	At          time.Time `json:"at"`
	Stage       int       `json:"stage"`
	Environment string    `json:"environment"`
	Reason      string    `json:"reason"`
}

// ReleasePaused: a person paused the release, or its stage's rollout paused (a guard fired, a
// step could not apply).
type ReleasePaused struct {
	At          time.Time `json:"at"`
	Stage       int       `json:"stage"`
	Environment string    `json:"environment"`
	Reason      string    `json:"reason,omitempty"`
}

type ReleaseResumed struct {
	At          time.Time `json:"at"`
	Stage       int       `json:"stage"`
	Environment string    `json:"environment"`
}

type ReleaseAborted struct {
	At          time.Time `json:"at"`
	Stage       int       `json:"stage"`
	Environment string    `json:"environment"`
	Reason      string    `json:"reason,omitempty"`
}

// ReleaseFinished: the last stage ended; the release is completed.
type ReleaseFinished struct {
	At          time.Time `json:"at"`
	Environment string    `json:"environment"` // of the last stage
}

func (*PipelineCreated) EventType() string          { return "PipelineCreated" }
func (*ReleaseStarted) EventType() string           { return "ReleaseStarted" }
func (*ReleaseStageWaiting) EventType() string      { return "ReleaseStageWaiting" }
func (*PipelineAwaitingApproval) EventType() string { return "PipelineAwaitingApproval" }
func (*ReleaseStageApproved) EventType() string     { return "ReleaseStageApproved" }
func (*ReleaseStageStarted) EventType() string      { return "ReleaseStageStarted" }
func (*ReleaseStageCompleted) EventType() string    { return "ReleaseStageCompleted" }
func (*ReleaseStageSkipped) EventType() string      { return "ReleaseStageSkipped" }
func (*ReleaseStageFailed) EventType() string       { return "ReleaseStageFailed" }
func (*ReleasePaused) EventType() string            { return "ReleasePaused" }
func (*ReleaseResumed) EventType() string           { return "ReleaseResumed" }
func (*ReleaseAborted) EventType() string           { return "ReleaseAborted" }
func (*ReleaseFinished) EventType() string          { return "ReleaseFinished" }

func init() {
	register(
		func() Event { return new(PipelineCreated) },
		func() Event { return new(ReleaseStarted) },
		func() Event { return new(ReleaseStageWaiting) },
		func() Event { return new(PipelineAwaitingApproval) },
		func() Event { return new(ReleaseStageApproved) },
		func() Event { return new(ReleaseStageStarted) },
		func() Event { return new(ReleaseStageCompleted) },
		func() Event { return new(ReleaseStageSkipped) },
		func() Event { return new(ReleaseStageFailed) },
		func() Event { return new(ReleasePaused) },
		func() Event { return new(ReleaseResumed) },
		func() Event { return new(ReleaseAborted) },
		func() Event { return new(ReleaseFinished) },
	)
}

// PipelineStream and ReleaseStream are the stream ids of pipelines and releases.
func PipelineStream(project, key string) string { return "pipeline/" + project + "/" + key }
func ReleaseStream(project, id string) string   { return "release/" + project + "/" + id }
