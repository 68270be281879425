package console

import (
	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/roles/analysis"
)

// experimentRoutes are the goals, experiments and reports operations.
func experimentRoutes() []route {
	return []route{
		{method: get, path: "/projects/:project/goals", scope: read, tag: "experiments", summary: "List goals", status: 200,
			query: []string{"archived"}, response: page[domain.Goal]{}, handler: (*Server).listGoals},
		{method: post, path: "/projects/:project/goals", scope: write, tag: "experiments", summary: "Create a goal (conversion, count or value; increase or decrease is good)",
			status: 201, request: domain.NewGoal{}, response: domain.Goal{}, handler: (*Server).createGoal},
		{method: get, path: "/projects/:project/goals/:goal", scope: read, tag: "experiments", summary: "Get a goal", status: 200,
			response: domain.Goal{}, handler: (*Server).getGoal},
		{method: patch, path: "/projects/:project/goals/:goal", scope: write, tag: "experiments", summary: "Update a goal's name, description, direction or value cap",
			status: 200, request: domain.GoalSettings{}, response: domain.Goal{}, handler: (*Server).updateGoal},
		{method: post, path: "/projects/:project/goals/:goal/archive", scope: write, tag: "experiments", summary: "Archive a goal no live experiment uses",
			status: 200, response: domain.Goal{}, handler: (*Server).archiveGoal},
		{method: post, path: "/projects/:project/goals/:goal/restore", scope: write, tag: "experiments", summary: "Restore an archived goal",
			status: 200, response: domain.Goal{}, handler: (*Server).restoreGoal},

		{method: get, path: "/projects/:project/experiments", scope: read, tag: "experiments", summary: "List experiments", status: 200,
			query: []string{"archived"}, response: page[domain.Experiment]{}, handler: (*Server).listExperiments},
		{method: post, path: "/projects/:project/experiments", scope: write, tag: "experiments", summary: "Create a draft experiment on a flag in an environment",
			status: 201, request: createExperimentRequest{}, response: domain.Experiment{}, handler: (*Server).createExperiment},
		{method: post, path: "/projects/:project/experiment-plan", scope: read, tag: "experiments",
			summary: "Size an experiment: users per variation and expected days for a minimum detectable effect, power and alpha at the flag's traffic",
			status:  200, request: analysis.PlanRequest{}, response: analysis.PlanResponse{}, handler: (*Server).planExperiment},
		{method: get, path: "/projects/:project/experiments/:experiment", scope: read, tag: "experiments", summary: "Get an experiment", status: 200,
			response: domain.Experiment{}, handler: (*Server).getExperiment},
		{method: put, path: "/projects/:project/experiments/:experiment", scope: write, tag: "experiments", summary: "Replace a draft experiment's definition",
			status: 200, request: domain.ExperimentDefinition{}, response: domain.Experiment{}, handler: (*Server).updateExperiment},
		{method: put, path: "/projects/:project/experiments/:experiment/analysis", scope: write, tag: "experiments",
			summary: "Change the analysis settings of a running or stopped experiment (engine, alpha, sequential, correction, CUPED, conversion windows, priors, quantiles, ratio metrics); the next analysis uses them",
			status:  200, request: domain.ExperimentAnalysis{}, response: domain.Experiment{}, handler: (*Server).changeExperimentAnalysis},
		{method: post, path: "/projects/:project/experiments/:experiment/start", scope: write, tag: "experiments", summary: "Start an experiment: its split is served from now on",
			status: 200, response: domain.Experiment{}, handler: (*Server).startExperiment},
		{method: post, path: "/projects/:project/experiments/:experiment/stop", scope: write, tag: "experiments", summary: "Stop an experiment: the flag's own targeting serves everyone again",
			status: 200, response: domain.Experiment{}, handler: (*Server).stopExperiment},
		{method: post, path: "/projects/:project/experiments/:experiment/conclude", scope: write, tag: "experiments",
			summary: "Conclude an experiment with the chosen variation; apply_to_flag makes it the flag's default serve", status: 200,
			request: concludeRequest{}, response: concludeResponse{}, handler: (*Server).concludeExperiment},
		{method: post, path: "/projects/:project/experiments/:experiment/archive", scope: write, tag: "experiments", summary: "Archive an experiment that is not running",
			status: 200, response: domain.Experiment{}, handler: (*Server).archiveExperiment},
		{method: post, path: "/projects/:project/experiments/:experiment/analyze", scope: write, tag: "experiments", summary: "Analyse the experiment now and store the result",
			status: 200, response: analysis.Analysis{}, handler: (*Server).analyzeExperiment},
		{method: get, path: "/projects/:project/experiments/:experiment/results", scope: read, tag: "experiments",
			summary: "The latest analysis: per goal and variation, sample-ratio check and a plain-language verdict", status: 200,
			response: analysis.Report{}, handler: (*Server).experimentResults},
		{method: get, path: "/projects/:project/experiments/:experiment/results/history", scope: read, tag: "experiments",
			summary: "How a goal's result evolved over the analyses", status: 200, query: []string{"goal", "from", "to"},
			response: page[analysis.Point]{}, handler: (*Server).experimentHistory},
	}
}
