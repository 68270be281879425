package platform

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/services/roles/webhooks"
)

// projectorProjections are what the projector role applies: the read models, then the webhook
// outbox. The outbox is no read model (replay does not rebuild it: its deliveries are effects
// already sent), so it is not among ReadModels().
func projectorProjections() []projections.Projection {
	return append(ReadModels(), webhooks.Outbox{})
}

// startWebhookWorker runs the delivery of outgoing webhooks beside the projector that fills
// their outbox. Every projector process runs one: they share the work through SKIP LOCKED.
func (p *Platform) startWebhookWorker(reg prometheus.Registerer) error {
	cfg := p.Config.Webhooks
	w, err := webhooks.NewWorker(webhooks.WorkerConfig{Pool: p.Pool, Backoff: webhooks.ExponentialBackoff(cfg.RetryBase, cfg.RetryMax),
		RetryWindow: cfg.RetryWindow, PollInterval: cfg.PollInterval, Timeout: cfg.Timeout, Registerer: reg, Logger: p.Log})
	if err != nil {
		return err
	}
	p.webhookWorker = w
	p.run("webhook-delivery", func() error { return w.Run(p.runCtx) })
	return nil
}

// wakeWebhooks tells this process's delivery worker, if it runs here, that a delivery is due.
func (p *Platform) wakeWebhooks() {
	if p.webhookWorker != nil {
		p.webhookWorker.Wake()
	}
}
