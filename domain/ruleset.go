package domain

// Ruleset is the compiled configuration of one environment: what a server-side SDK downloads for
// local evaluation and what the api role holds in memory. It carries only the environment's own
// targeting, never other environments', and no SDK keys.
type Ruleset struct {
	Project     string `json:"project"`
	Environment string `json:"environment"`
	// Version increases with every change that affects the environment; the ETag is derived from it.
	Version  int64                  `json:"version"`
	Flags    map[string]*FlagConfig `json:"flags"`
	Segments map[string]*Segment    `json:"segments"`
}

// FlagConfig is a flag as seen from one environment.
type FlagConfig struct {
	Key        string      `json:"key"`
	Type       FlagType    `json:"type"`
	Variations []Variation `json:"variations"`
	Salt       string      `json:"salt"`
	ClientSide bool        `json:"client_side"`
	Version    int64       `json:"version"` // the flag aggregate's version
	Targeting  Targeting   `json:"targeting"`
	// Experiment, while one runs on the flag in this environment, replaces the default serve for
	// the users its allocation takes in (see ExperimentSplit); the others keep the targeting.
	Experiment *ExperimentSplit `json:"experiment,omitempty"`
}

// ConfigFor returns the flag as seen from environment env. A missing environment (created after
// the flag) serves the default off variation with the flag off.
func (f *Flag) ConfigFor(env string) *FlagConfig {
	c := &FlagConfig{Key: f.Key, Type: f.Type, Variations: f.Variations, Salt: f.Salt,
		ClientSide: f.ClientSide, Version: f.Version}
	if t, ok := f.Environments[env]; ok && t != nil {
		c.Targeting = *t
	} else {
		c.Targeting = Targeting{OffVariation: f.Defaults.OffVariation,
			Default: Serve{Variation: f.Defaults.OnVariation}}
	}
	return c
}
