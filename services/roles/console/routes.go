package console

import (
	"net/http"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/audit"
	"github.com/vexil-flags/vexil/projections/catalog"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/app/identity"
)

const (
	get, post, put, patch, del = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete
	read, write, admin         = domain.ScopeRead, domain.ScopeWrite, domain.ScopeAdmin
)

var listParams = []string{"q", "tag", "archived", "cursor", "limit"}
var auditParams = []string{"environment", "actor", "kind", "from", "to", "cursor", "limit"}

// exportParams are auditParams and format (jsonl or csv), which every audit route accepts to
// export the whole filtered log instead of a page.
var exportParams = append([]string{"format"}, auditParams...)

func routes() []route {
	return []route{
		{method: get, path: "/openapi.json", summary: "This OpenAPI document", tag: "meta", status: 200,
			handler: (*Server).openAPI},

		{method: get, path: "/projects", scope: read, reach: reachListing, tag: "projects", summary: "List projects (a project-restricted token sees its own)", status: 200,
			query: []string{"cursor", "limit"}, response: page[catalog.ProjectSummary]{}, handler: (*Server).listProjects},
		{method: post, path: "/projects", scope: admin, reach: reachInstance, tag: "projects", summary: "Create a project with its environments (default development and production); needs an unrestricted token",
			status: 201, request: createProjectRequest{}, response: domain.Project{}, handler: (*Server).createProject},
		{method: get, path: "/projects/:project", scope: read, tag: "projects", summary: "Get a project", status: 200,
			response: domain.Project{}, handler: (*Server).getProject},
		{method: patch, path: "/projects/:project", scope: admin, tag: "projects", summary: "Rename or describe a project", status: 200,
			request: updateProjectRequest{}, response: domain.Project{}, handler: (*Server).updateProject},
		{method: get, path: "/projects/:project/audit", scope: read, tag: "audit", summary: "Audit log of a project, newest first; format=jsonl or csv exports it",
			status: 200, query: exportParams, response: page[audit.Entry]{}, handler: (*Server).projectAudit},

		{method: get, path: "/projects/:project/environments", scope: read, tag: "environments", summary: "List environments",
			status: 200, response: page[domain.Environment]{}, handler: (*Server).listEnvironments},
		{method: post, path: "/projects/:project/environments", scope: admin, tag: "environments", summary: "Create an environment",
			status: 201, request: domain.NewEnvironment{}, response: domain.Environment{}, handler: (*Server).createEnvironment},
		{method: get, path: "/projects/:project/environments/:environment", scope: read, tag: "environments", summary: "Get an environment (server key shown to admin tokens only)",
			status: 200, response: domain.Environment{}, handler: (*Server).getEnvironment},
		{method: patch, path: "/projects/:project/environments/:environment", scope: admin, tag: "environments", summary: "Rename or recolor an environment, or turn its server-side exposure logging on or off",
			status: 200, request: updateEnvironmentRequest{}, response: domain.Environment{}, handler: (*Server).updateEnvironment},
		{method: post, path: "/projects/:project/environments/:environment/keys/:kind/rotate", scope: admin, tag: "environments",
			summary: "Rotate the client or server SDK key; the old key stops working at once", status: 200,
			response: domain.Environment{}, handler: (*Server).rotateSDKKey},

		{method: get, path: "/projects/:project/flags", scope: read, tag: "flags", summary: "List flags (filters: q, tag, archived; cursor pagination)",
			status: 200, query: listParams, response: page[domain.Flag]{}, handler: (*Server).listFlags},
		{method: post, path: "/projects/:project/flags", scope: write, tag: "flags", summary: "Create a flag",
			status: 201, request: createFlagRequest{}, response: domain.Flag{}, handler: (*Server).createFlag},
		{method: get, path: "/projects/:project/flags/:flag", scope: read, tag: "flags", summary: "Get a flag; ETag is its version",
			status: 200, response: domain.Flag{}, handler: (*Server).getFlag},
		{method: patch, path: "/projects/:project/flags/:flag", scope: write, tag: "flags", summary: "Update a flag's name, description, tags, client-side availability, defaults",
			status: 200, request: updateFlagRequest{}, response: domain.Flag{}, handler: (*Server).updateFlag},
		{method: put, path: "/projects/:project/flags/:flag/variations", scope: write, tag: "flags", summary: "Replace a flag's variations",
			status: 200, request: variationsRequest{}, response: domain.Flag{}, handler: (*Server).updateVariations},
		{method: get, path: "/projects/:project/flags/:flag/environments/:environment", scope: read, tag: "flags", summary: "Get a flag's targeting in one environment",
			status: 200, response: targetingView{}, handler: (*Server).getTargeting},
		{method: put, path: "/projects/:project/flags/:flag/environments/:environment", scope: write, tag: "flags", summary: "Replace a flag's targeting in one environment",
			status: 200, request: domain.Targeting{}, response: targetingView{}, handler: (*Server).updateTargeting},
		{method: post, path: "/projects/:project/flags/:flag/environments/:environment/toggle", scope: write, tag: "flags", summary: "Turn a flag on or off in one environment (kill switch)",
			status: 200, request: toggleRequest{}, response: targetingView{}, handler: (*Server).toggleFlag},
		{method: post, path: "/projects/:project/flags/:flag/archive", scope: write, tag: "flags", summary: "Archive a flag",
			status: 200, response: domain.Flag{}, handler: (*Server).archiveFlag},
		{method: post, path: "/projects/:project/flags/:flag/restore", scope: write, tag: "flags", summary: "Restore an archived flag",
			status: 200, response: domain.Flag{}, handler: (*Server).restoreFlag},
		{method: get, path: "/projects/:project/flags/:flag/audit", scope: read, tag: "audit", summary: "Audit log of a flag, newest first; format=jsonl or csv exports it",
			status: 200, query: exportParams, response: page[audit.Entry]{}, handler: (*Server).flagAudit},

		{method: get, path: "/projects/:project/segments", scope: read, tag: "segments", summary: "List segments (filters: q, tag, archived; cursor pagination)",
			status: 200, query: listParams, response: page[domain.Segment]{}, handler: (*Server).listSegments},
		{method: post, path: "/projects/:project/segments", scope: write, tag: "segments", summary: "Create a segment",
			status: 201, request: segmentRequest{}, response: domain.Segment{}, handler: (*Server).createSegment},
		{method: get, path: "/projects/:project/segments/:segment", scope: read, tag: "segments", summary: "Get a segment",
			status: 200, response: domain.Segment{}, handler: (*Server).getSegment},
		{method: put, path: "/projects/:project/segments/:segment", scope: write, tag: "segments", summary: "Replace a segment's definition",
			status: 200, request: segmentRequest{}, response: domain.Segment{}, handler: (*Server).updateSegment},
		{method: post, path: "/projects/:project/segments/:segment/archive", scope: write, tag: "segments", summary: "Archive a segment no live flag uses",
			status: 200, response: domain.Segment{}, handler: (*Server).archiveSegment},
		{method: post, path: "/projects/:project/segments/:segment/restore", scope: write, tag: "segments", summary: "Restore an archived segment",
			status: 200, response: domain.Segment{}, handler: (*Server).restoreSegment},
		{method: get, path: "/projects/:project/segments/:segment/audit", scope: read, tag: "audit", summary: "Audit log of a segment, newest first; format=jsonl or csv exports it",
			status: 200, query: exportParams, response: page[audit.Entry]{}, handler: (*Server).segmentAudit},

		{method: get, path: "/projects/:project/environments/:environment/flags/:flag/stats", scope: read, tag: "stats",
			summary: "Evaluations of a flag per variation over time (interval minute, hour or day; from, to), from the telemetry rollups", status: 200,
			query: statsParams, response: telemetry.FlagStats{}, handler: (*Server).flagStats},
		{method: get, path: "/projects/:project/environments/:environment/flag-activity", scope: read, tag: "stats",
			summary: "Last evaluation time of every live flag in an environment", status: 200,
			response: page[telemetry.FlagActivity]{}, handler: (*Server).flagActivity},
		{method: get, path: "/projects/:project/environments/:environment/stale-flags", scope: read, tag: "stats",
			summary: "Live flags not evaluated in an environment for days (default 30)", status: 200,
			query: []string{"days"}, response: staleFlags{}, handler: (*Server).staleFlags},
		{method: get, path: "/projects/:project/environments/:environment/goals/:goal/stats", scope: read, tag: "stats",
			summary: "Conversions and values of a goal over time (interval hour or day), in total and per variation of a flag or experiment", status: 200,
			query: append([]string{"flag", "experiment"}, statsParams...), response: telemetry.GoalStats{}, handler: (*Server).goalStats},

		// Progressive delivery (delivery.go).
		{method: get, path: "/projects/:project/schedules", scope: read, tag: "schedules", summary: "List scheduled changes by due time, with status, failure reason and next runs (filters: flag, environment, status)",
			status: 200, query: deliveryStatusListParams, response: page[scheduleView]{}, handler: (*Server).listSchedules},
		{method: post, path: "/projects/:project/schedules", scope: write, tag: "schedules", summary: "Schedule a change of a flag in an environment (toggle, targeting or default) at a time (RFC 3339, or local in a named time_zone), or a toggle recurring on weekdays at a local time",
			status: 201, request: scheduleRequest{}, response: scheduleView{}, handler: (*Server).createSchedule},
		{method: get, path: "/projects/:project/schedules/:id", scope: read, tag: "schedules", summary: "Get a scheduled change with its next runs (up to 5, in its time zone)",
			status: 200, response: scheduleView{}, handler: (*Server).getSchedule},
		{method: put, path: "/projects/:project/schedules/:id", scope: write, tag: "schedules", summary: "Edit a pending scheduled change (time, time zone, recurrence and change)",
			status: 200, request: scheduleEditRequest{}, response: scheduleView{}, handler: (*Server).editSchedule},
		{method: post, path: "/projects/:project/schedules/:id/cancel", scope: write, tag: "schedules", summary: "Cancel a pending scheduled change",
			status: 200, response: scheduleView{}, handler: (*Server).cancelSchedule},
		{method: get, path: "/projects/:project/rollouts", scope: read, tag: "rollouts", summary: "List progressive rollouts with their step statuses (filters: flag, environment, status)",
			status: 200, query: deliveryStatusListParams, response: page[rolloutView]{}, handler: (*Server).listRollouts},
		{method: post, path: "/projects/:project/rollouts", scope: write, tag: "rollouts", summary: "Create a progressive rollout from steps or a template {start, every, percents}",
			status: 201, request: rolloutRequest{}, response: rolloutView{}, handler: (*Server).createRollout},
		{method: get, path: "/projects/:project/rollouts/:id", scope: read, tag: "rollouts", summary: "Get a rollout with the status of each step",
			status: 200, response: rolloutView{}, handler: (*Server).getRollout},
		{method: post, path: "/projects/:project/rollouts/:id/pause", scope: write, tag: "rollouts", summary: "Pause a rollout",
			status: 200, request: reasonRequest{}, response: rolloutView{}, handler: (*Server).pauseRollout},
		{method: post, path: "/projects/:project/rollouts/:id/resume", scope: write, tag: "rollouts", summary: "Resume a paused rollout; steps not yet applied move later by the time spent paused",
			status: 200, response: rolloutView{}, handler: (*Server).resumeRollout},
		{method: post, path: "/projects/:project/rollouts/:id/abort", scope: write, tag: "rollouts", summary: "Abort a rollout and restore the starting default serve",
			status: 200, request: reasonRequest{}, response: rolloutView{}, handler: (*Server).abortRollout},
		{method: get, path: "/projects/:project/autoops-rules", scope: read, tag: "auto-ops", summary: "List auto-ops rules (filters: flag, environment)",
			status: 200, query: deliveryListParams, response: page[domain.AutoOpsRule]{}, handler: (*Server).listAutoOpsRules},
		{method: post, path: "/projects/:project/autoops-rules", scope: write, tag: "auto-ops", summary: "Create an auto-ops rule: when a goal's rate crosses a threshold, turn the flag off or roll back or pause its rollout",
			status: 201, request: autoOpsRuleRequest{}, response: domain.AutoOpsRule{}, handler: (*Server).createAutoOpsRule},
		{method: get, path: "/projects/:project/autoops-rules/:id", scope: read, tag: "auto-ops", summary: "Get an auto-ops rule with the evidence of its last firing",
			status: 200, response: domain.AutoOpsRule{}, handler: (*Server).getAutoOpsRule},
		{method: put, path: "/projects/:project/autoops-rules/:id", scope: write, tag: "auto-ops", summary: "Replace an auto-ops rule's definition (re-arms a triggered rule)",
			status: 200, request: domain.AutoOpsDefinition{}, response: domain.AutoOpsRule{}, handler: (*Server).updateAutoOpsRule},
		{method: del, path: "/projects/:project/autoops-rules/:id", scope: write, tag: "auto-ops", summary: "Delete an auto-ops rule",
			status: 200, response: domain.AutoOpsRule{}, handler: (*Server).deleteAutoOpsRule},
		{method: post, path: "/projects/:project/autoops-rules/:id/enable", scope: write, tag: "auto-ops", summary: "Enable an auto-ops rule (re-arms a triggered rule)",
			status: 200, response: domain.AutoOpsRule{}, handler: (*Server).enableAutoOpsRule},
		{method: post, path: "/projects/:project/autoops-rules/:id/disable", scope: write, tag: "auto-ops", summary: "Disable an auto-ops rule",
			status: 200, response: domain.AutoOpsRule{}, handler: (*Server).disableAutoOpsRule},
		{method: get, path: "/projects/:project/autoops-rules/:id/firings", scope: read, tag: "auto-ops", summary: "Firings of an auto-ops rule with their evidence, newest first",
			status: 200, query: []string{"cursor", "limit"}, response: page[delivery.Firing]{}, handler: (*Server).listAutoOpsFirings},
		{method: get, path: "/projects/:project/triggers", scope: read, tag: "triggers", summary: "List webhook triggers, never their secrets (filters: flag, environment)",
			status: 200, query: deliveryListParams, response: page[delivery.TriggerSummary]{}, handler: (*Server).listTriggers},
		{method: post, path: "/projects/:project/triggers", scope: write, tag: "triggers", summary: "Create a webhook trigger that turns a flag on or off; its URL and secret are shown only in this answer",
			status: 201, request: triggerRequest{}, response: triggerSecretView{}, handler: (*Server).createTrigger},
		{method: get, path: "/projects/:project/triggers/:id", scope: read, tag: "triggers", summary: "Get a webhook trigger (never its secret)",
			status: 200, response: delivery.TriggerSummary{}, handler: (*Server).getTrigger},
		{method: post, path: "/projects/:project/triggers/:id/rotate", scope: write, tag: "triggers", summary: "Rotate a trigger's secret; the old one stops working at once; the new one is shown only in this answer",
			status: 200, response: triggerSecretView{}, handler: (*Server).rotateTrigger},
		{method: post, path: "/projects/:project/triggers/:id/enable", scope: write, tag: "triggers", summary: "Enable a webhook trigger",
			status: 200, response: delivery.TriggerSummary{}, handler: (*Server).enableTrigger},
		{method: post, path: "/projects/:project/triggers/:id/disable", scope: write, tag: "triggers", summary: "Disable a webhook trigger: calls answer 409 until it is enabled",
			status: 200, response: delivery.TriggerSummary{}, handler: (*Server).disableTrigger},
		{method: del, path: "/projects/:project/triggers/:id", scope: write, tag: "triggers", summary: "Delete a webhook trigger",
			status: 200, response: delivery.TriggerSummary{}, handler: (*Server).deleteTrigger},

		{method: get, path: "/account-audit", scope: admin, reach: reachInstance, tag: "audit", summary: "Audit of the web console's accounts and memberships, newest first: people created, roles given, changed and removed, sessions revoked, refused sign-ins; needs an unrestricted token",
			status: 200, query: []string{"cursor", "limit"}, response: page[identity.AccountEntry]{}, handler: (*Server).instanceAccountAudit},
		{method: get, path: "/projects/:project/members/audit", scope: admin, tag: "audit", summary: "Audit of a project's console members: roles given, changed and removed, and the accounts and sessions of its members, newest first",
			status: 200, query: []string{"cursor", "limit"}, response: page[identity.AccountEntry]{}, handler: (*Server).projectAccountAudit},

		{method: get, path: "/tokens", scope: admin, reach: reachListing, tag: "tokens", summary: "List the API tokens within this token's project and scope (never their secrets)",
			status: 200, response: page[tokenView]{}, handler: (*Server).listTokens},
		{method: post, path: "/tokens", scope: admin, reach: reachToken, tag: "tokens", summary: "Create an API token within this token's project and scope; the secret is shown only in this answer",
			status: 201, request: createTokenRequest{}, response: createdToken{}, handler: (*Server).createToken},
		{method: del, path: "/tokens/:id", scope: admin, reach: reachToken, tag: "tokens", summary: "Revoke an API token within this token's project and scope",
			status: 200, response: tokenView{}, handler: (*Server).revokeToken},
	}
}
