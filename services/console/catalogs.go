package console

import (
	"context"

	"github.com/vexil-flags/vexil/domain"
)

// ExperimentCatalog is the project's flag catalog with its goals, experiments and rollouts, as
// experiment and rollout commands validate against it (e.g. for the demo seed).
func (a *App) ExperimentCatalog(ctx context.Context, project string) (*domain.ExperimentCatalog, error) {
	return a.experimentCatalog(ctx, project)
}
