package config

import (
	"fmt"
	"strconv"
	"time"
)

// Console holds the web console's settings (services/roles/web).
type Console struct {
	SessionIdle     time.Duration // a session unused this long ends
	SessionAbsolute time.Duration // any session ends this long after sign-in
	LoginAttempts   int           // sign-in attempts at once per email and per client address
	LoginInterval   time.Duration // then one more attempt per this interval
}

// parseConsole reads the console's settings. The bounds keep a typo from disabling expiry: idle
// from 1 minute to 24 hours, absolute from 5 minutes to 30 days and never below idle.
func (c *Config) parseConsole(vals map[string]*string) error {
	var err error
	if c.Console.SessionIdle, err = ParseLongDuration(*vals["session-idle-timeout"]); err != nil || c.Console.SessionIdle < time.Minute || c.Console.SessionIdle > 24*time.Hour {
		return fmt.Errorf("config: session-idle-timeout must be a duration from 1m to 24h, got %q", *vals["session-idle-timeout"])
	}
	if c.Console.SessionAbsolute, err = ParseLongDuration(*vals["session-max-age"]); err != nil || c.Console.SessionAbsolute < 5*time.Minute || c.Console.SessionAbsolute > 30*24*time.Hour {
		return fmt.Errorf("config: session-max-age must be a duration from 5m to 30d, got %q", *vals["session-max-age"])
	}
	if c.Console.SessionAbsolute < c.Console.SessionIdle {
		return fmt.Errorf("config: session-max-age (%s) must not be shorter than session-idle-timeout (%s)", c.Console.SessionAbsolute, c.Console.SessionIdle)
	}
	if c.Console.LoginAttempts, err = strconv.Atoi(*vals["login-attempts"]); err != nil || c.Console.LoginAttempts < 1 || c.Console.LoginAttempts > 1000 {
		return fmt.Errorf("config: login-attempts must be an integer from 1 to 1000, got %q", *vals["login-attempts"])
	}
	if c.Console.LoginInterval, err = time.ParseDuration(*vals["login-interval"]); err != nil || c.Console.LoginInterval < 100*time.Millisecond || c.Console.LoginInterval > 24*time.Hour {
		return fmt.Errorf("config: login-interval must be a duration from 100ms to 24h, got %q", *vals["login-interval"])
	}
	return nil
}
