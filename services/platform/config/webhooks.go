package config

import (
	"fmt"
	"time"
)

// Webhooks bounds the delivery of outgoing webhooks (services/roles/webhooks).
type Webhooks struct {
	RetryBase, RetryMax, RetryWindow, PollInterval, Timeout time.Duration
}

func init() {
	settings = append(settings,
		setting{"VEXIL_WEBHOOK_RETRY_BASE", "webhook-retry-base", "10s", "outgoing webhooks: wait before the second attempt; it doubles after every failure (with jitter) up to webhook-retry-max"},
		setting{"VEXIL_WEBHOOK_RETRY_MAX", "webhook-retry-max", "1h", "outgoing webhooks: longest wait between two attempts"},
		setting{"VEXIL_WEBHOOK_RETRY_WINDOW", "webhook-retry-window", "24h", "outgoing webhooks: a delivery still failing this long after its event is given up (status failed)"},
		setting{"VEXIL_WEBHOOK_POLL_INTERVAL", "webhook-poll-interval", "1s", "outgoing webhooks: how often the projector role looks for due deliveries"},
		setting{"VEXIL_WEBHOOK_TIMEOUT", "webhook-timeout", "10s", "outgoing webhooks: time a receiver has to answer one delivery"},
	)
}

func (c *Config) parseWebhooks(vals map[string]*string) error {
	for _, d := range []struct {
		flag string
		to   *time.Duration
	}{{"webhook-retry-base", &c.Webhooks.RetryBase}, {"webhook-retry-max", &c.Webhooks.RetryMax},
		{"webhook-retry-window", &c.Webhooks.RetryWindow}, {"webhook-poll-interval", &c.Webhooks.PollInterval},
		{"webhook-timeout", &c.Webhooks.Timeout}} {
		v, err := ParseLongDuration(*vals[d.flag])
		if err != nil || v <= 0 {
			return fmt.Errorf("config: %s must be a positive duration, got %q", d.flag, *vals[d.flag])
		}
		*d.to = v
	}
	if c.Webhooks.RetryMax < c.Webhooks.RetryBase {
		return fmt.Errorf("config: webhook-retry-max (%s) must be at least webhook-retry-base (%s)", c.Webhooks.RetryMax, c.Webhooks.RetryBase)
	}
	return nil
}
