package console_test

import (
	"testing"

	"github.com/vexil-flags/vexil/services/roles/console"
)

// Issue 21: experiment reports are typed all the way down, in snake_case: the sample-ratio check,
// the figures of each model, the frequentist test, CUPED and the analysis details.
func TestOpenAPIExperimentReportSchemasAreTyped(t *testing.T) {
	doc := console.OpenAPI()
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	props := func(name string) map[string]any {
		t.Helper()
		s, ok := schemas[name].(map[string]any)
		if !ok {
			t.Fatalf("schema %s missing", name)
		}
		p, _ := s["properties"].(map[string]any)
		if len(p) == 0 {
			t.Fatalf("schema %s has no properties: %v", name, s)
		}
		return p
	}
	ref := func(schema, field, want string) {
		t.Helper()
		got, _ := props(schema)[field].(map[string]any)
		if got["$ref"] != "#/components/schemas/"+want {
			t.Errorf("%s.%s is %v, want a reference to %s", schema, field, got, want)
		}
	}
	for _, s := range []string{"Report", "Analysis"} {
		ref(s, "srm", "SRMResult")
		ref(s, "window", "AnalysisWindow")
		ref(s, "settings", "ExperimentAnalysis")
	}
	ref("VariationResult", "figures", "VariationFigures")
	ref("VariationResult", "frequentist", "FrequentistResult")
	ref("VariationResult", "cuped", "CUPEDFigures")
	ref("VariationResult", "quantile", "QuantileFigures")
	ref("QuantileFigures", "frequentist", "FrequentistResult")
	ref("VariationFigures", "value", "ValueVariation")
	ref("ValueVariation", "welch", "WelchTest")
	for schema, fields := range map[string][]string{
		"SRMResult":         {"p_value", "mismatch", "unknown", "chi_square"},
		"GoalResult":        {"direction", "role", "conversion_window_hours"},
		"FrequentistResult": {"p_value", "p_value_adjusted", "ci", "sequential"},
		"ValueVariation":    {"absolute_chance_to_beat_control", "uplift_ci95", "scale"},
		"Report":            {"unknown_variations", "guardrail_violations"},
		"QuantileFigures":   {"quantile", "users", "estimate", "ci", "ranks", "alpha", "chance_to_beat_control"},
		"GoalAnalysis":      {"quantile", "conversion_window_hours", "prior"},
	} {
		for _, f := range fields {
			if props(schema)[f] == nil {
				t.Errorf("%s has no %s", schema, f)
			}
		}
	}
}
