package config

import (
	"fmt"
	"strconv"
	"time"
)

// parseServerExposures reads the server-side exposure logging settings.
func (c *Config) parseServerExposures(vals map[string]*string) error {
	var err error
	if c.ServerExposures, err = strconv.ParseBool(*vals["server-exposures"]); err != nil {
		return fmt.Errorf("config: server-exposures must be true or false, got %q", *vals["server-exposures"])
	}
	if c.ServerExposuresFlushInterval, err = time.ParseDuration(*vals["server-exposures-flush-interval"]); err != nil ||
		c.ServerExposuresFlushInterval < 10*time.Millisecond {
		return fmt.Errorf("config: server-exposures-flush-interval must be a duration of at least 10ms, got %q", *vals["server-exposures-flush-interval"])
	}
	n, err := strconv.Atoi(*vals["server-exposures-max-pending"])
	if err != nil || n < 1000 {
		return fmt.Errorf("config: server-exposures-max-pending must be an integer of at least 1000, got %q", *vals["server-exposures-max-pending"])
	}
	c.ServerExposuresMaxPending = n
	return nil
}
