package console

import (
	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/audit"
)

// historyRoutes are time travel, explain and the history exports.
func historyRoutes() []route {
	return []route{
		{method: get, path: "/projects/:project/flags/:flag/at", scope: read, tag: "history",
			summary: "A flag as it was at a moment (at, RFC 3339), folded from its events", status: 200, query: []string{"at"},
			response: domain.Flag{}, handler: (*Server).flagAt},
		{method: get, path: "/projects/:project/environments/:environment/ruleset", scope: read, tag: "history",
			summary: "An environment's whole ruleset as it was at a moment (at, RFC 3339)", status: 200, query: []string{"at"},
			response: domain.Ruleset{}, handler: (*Server).environmentRulesetAt},
		{method: post, path: "/projects/:project/environments/:environment/explain", scope: read, tag: "history",
			summary: "Which variation a context got, or would get, at a moment (default now), and why: rule, clauses with the context's values, bucket",
			status:  200, request: explainRequest{}, response: explainResponse{}, handler: (*Server).explain},
		{method: get, path: "/projects/:project/environments/:environment/audit", scope: read, tag: "audit",
			summary: "Audit log of an environment, newest first; format=jsonl or csv exports it", status: 200, query: exportParams,
			response: page[audit.Entry]{}, handler: (*Server).environmentAudit},
		{method: get, path: "/projects/:project/experiments/:experiment/audit", scope: read, tag: "audit",
			summary: "Audit log of an experiment, newest first; format=jsonl or csv exports it", status: 200, query: exportParams,
			response: page[audit.Entry]{}, handler: (*Server).experimentAudit},
	}
}
