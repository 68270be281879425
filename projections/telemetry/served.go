package telemetry

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Served is how often each variation of a flag was served since a moment.
type Served struct {
	Flag       string           `json:"flag"`
	Variations map[string]int64 `json:"variations"` // "" is evaluations that served no variation (errors)
}

// VariationsServed reads, from the daily rollup, the evaluations per variation of every flag of an
// environment evaluated since the start of since's day (UTC). A flag with one variation here has
// served that variation to everybody since then: a candidate for cleaning up (the console's stale
// flags page).
func VariationsServed(ctx context.Context, db DB, project, environment string, since time.Time) (map[string]Served, error) {
	day := since.UTC().Truncate(24 * time.Hour)
	rows, err := db.Query(ctx, `SELECT flag, variation, sum(evaluations)::bigint FROM evaluations_per_day
		WHERE project = $1 AND environment = $2 AND bucket >= $3 GROUP BY flag, variation`, project, environment, day)
	if err != nil {
		return nil, fmt.Errorf("telemetry: variations served: %w", err)
	}
	out := map[string]Served{}
	var flag, variation string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&flag, &variation, &n}, func() error {
		s, ok := out[flag]
		if !ok {
			s = Served{Flag: flag, Variations: map[string]int64{}}
			out[flag] = s
		}
		s.Variations[variation] += n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("telemetry: variations served: %w", err)
	}
	return out, nil
}
