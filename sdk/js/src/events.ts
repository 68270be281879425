// Batched delivery of tracking and exposure events to Vexil.
//
// Two channels share one queue bound and one flush timer: track() calls go to
// POST /ofrep/v1/track (the OFREP-shaped tracking endpoint), exposures to POST /sdk/v1/events
// (evaluation events carrying experiment_key). Every event carries an event id and a timestamp
// set here, once, so a batch sent twice (a retry after a lost answer) is stored once.
//
// While the page lives, batches go by fetch with the key in Authorization; failures that can
// succeed later (network, 429, 5xx) keep the batch for the next flush, after the server's
// Retry-After. When the page is hidden or left (visibilitychange to hidden, pagehide), whatever
// waits goes by navigator.sendBeacon, which the browser delivers after the page is gone: a beacon
// cannot carry headers, so it sends the client key as ?key= and the body as text/plain (a
// CORS-safelisted type, so no preflight, which a beacon cannot wait for).

/** A clock and timer source, injectable for tests. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
  now(): number;
}

/** Where page-lifecycle events come from: window (pagehide) and document (visibilitychange). */
export interface PageLifecycle {
  window?: Pick<EventTarget, 'addEventListener' | 'removeEventListener'>;
  document?: Pick<EventTarget, 'addEventListener' | 'removeEventListener'> & { visibilityState?: string };
}

export interface EventDeliveryOptions {
  baseUrl: string;
  clientKey: string;
  /** How long an event may wait before its batch is sent, in milliseconds. Default 2000. */
  flushIntervalMs?: number;
  /** A channel is sent at once when this many events wait. Default 100 (the server takes up to 1,000). */
  batchSize?: number;
  /** At most this many events wait in memory (both channels, retries included); past it new events are dropped and counted. Default 1000. */
  maxQueue?: number;
  /** Send what waits with sendBeacon when the page is hidden or left. Default true. */
  beaconOnPageHide?: boolean;
  fetchImplementation?: typeof fetch;
  sendBeacon?: (url: string, data: Blob) => boolean;
  lifecycle?: PageLifecycle;
  timers?: Timers;
  logger?: { warn(...args: unknown[]): void; error(...args: unknown[]): void; debug(...args: unknown[]): void };
}

/** Counters of what happened to the events, for monitoring and tests. */
export interface EventStats {
  /** Events held in memory: waiting (both channels) or on their way. */
  queued: number;
  /** Events the server accepted (fetch answers 202). */
  accepted: number;
  /** Events the server refused as invalid (per-item errors, or a 400/413 batch). */
  rejected: number;
  /** Events handed to sendBeacon (the browser reports no answer). */
  beaconed: number;
  /** Events dropped because the queue was full, or the key was refused (401/403). */
  dropped: number;
  /** Requests that failed and were kept for a retry (network errors, 429, 5xx). */
  retries: number;
}

export type Channel = 'track' | 'exposure';

const paths: Record<Channel, string> = {
  track: '/ofrep/v1/track',
  exposure: '/sdk/v1/events',
};

/** A beacon body must stay under the browser's in-flight quota (64 KiB in Chromium). */
const beaconMaxBytes = 60 * 1024;

const defaultTimers: Timers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (id) => globalThis.clearTimeout(id as ReturnType<typeof globalThis.setTimeout>),
  now: () => Date.now(),
};

export class EventDelivery {
  private readonly baseUrl: string;
  private readonly clientKey: string;
  private readonly flushIntervalMs: number;
  private readonly batchSize: number;
  private readonly maxQueue: number;
  private readonly fetchImpl: typeof fetch;
  private readonly beacon?: (url: string, data: Blob) => boolean;
  private readonly timers: Timers;
  private readonly logger?: EventDeliveryOptions['logger'];
  private readonly lifecycle: PageLifecycle;

  private readonly queues: Record<Channel, object[]> = { track: [], exposure: [] };
  private readonly inflight: Record<Channel, Promise<boolean> | undefined> = { track: undefined, exposure: undefined };
  /** The batch each channel has on its way: a page that is left may abort its fetch, so a beacon sends it too. */
  private readonly inflightBatch: Record<Channel, object[] | undefined> = { track: undefined, exposure: undefined };
  /** Events of batches on their way: they count against maxQueue until answered. */
  private inflightEvents = 0;
  private timer: unknown;
  /** No fetch before this time (ms since epoch): the server's Retry-After. */
  private retryAt = 0;
  private closed = false;
  private readonly counts = { accepted: 0, rejected: 0, beaconed: 0, dropped: 0, retries: 0 };
  private readonly onPageHide = () => this.sendBeacons();
  private readonly onVisibility = () => {
    if (this.lifecycle.document?.visibilityState === 'hidden') this.sendBeacons();
  };

  constructor(options: EventDeliveryOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.clientKey = options.clientKey;
    this.flushIntervalMs = options.flushIntervalMs ?? 2000;
    this.batchSize = Math.max(1, Math.min(options.batchSize ?? 100, 1000));
    this.maxQueue = Math.max(this.batchSize, options.maxQueue ?? 1000);
    this.fetchImpl = options.fetchImplementation ?? ((input, init) => globalThis.fetch(input, init));
    this.timers = options.timers ?? defaultTimers;
    this.logger = options.logger;
    this.lifecycle = options.lifecycle ?? {
      window: typeof window !== 'undefined' ? window : undefined,
      document: typeof document !== 'undefined' ? document : undefined,
    };
    if (options.beaconOnPageHide ?? true) {
      this.beacon =
        options.sendBeacon ??
        (typeof navigator !== 'undefined' && typeof navigator.sendBeacon === 'function'
          ? (url, data) => navigator.sendBeacon(url, data)
          : undefined);
      if (this.beacon) {
        this.lifecycle.window?.addEventListener('pagehide', this.onPageHide);
        this.lifecycle.document?.addEventListener('visibilitychange', this.onVisibility);
      }
    }
  }

  stats(): EventStats {
    return { queued: this.queued(), ...this.counts };
  }

  /** enqueue adds an event to a channel; it never waits. False when the queue is full (counted in dropped) or closed. */
  enqueue(channel: Channel, event: object): boolean {
    if (this.closed || this.queued() >= this.maxQueue) {
      this.counts.dropped++;
      return false;
    }
    this.queues[channel].push(event);
    if (this.queues[channel].length >= this.batchSize) void this.send(channel);
    this.schedule(this.flushIntervalMs); // what a full batch left behind, or this event
    return true;
  }

  /** flush sends everything that waits by fetch, batch after batch, and resolves when done (or when a batch failed and was kept). */
  async flush(): Promise<void> {
    for (const channel of Object.keys(paths) as Channel[]) {
      for (;;) {
        const current = this.inflight[channel];
        if (current) {
          await current; // a batch on its way: wait for its answer, then go on
          continue;
        }
        if (this.queues[channel].length === 0 || !(await this.send(channel, true))) break;
      }
    }
  }

  /** close sends what waits and stops: later events are dropped. What fetch could not deliver goes by beacon, a last try. */
  async close(): Promise<void> {
    this.lifecycle.window?.removeEventListener('pagehide', this.onPageHide);
    this.lifecycle.document?.removeEventListener('visibilitychange', this.onVisibility);
    this.retryAt = 0;
    await this.flush();
    if (this.queued() > 0) this.sendBeacons();
    this.closed = true;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private queued(): number {
    return this.queues.track.length + this.queues.exposure.length + this.inflightEvents;
  }

  private schedule(ms: number) {
    if (this.timer !== undefined || this.closed) return;
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      void this.sendAll();
    }, ms);
  }

  private async sendAll() {
    for (const channel of Object.keys(paths) as Channel[]) {
      await this.send(channel);
    }
    if (this.queued() > 0) this.schedule(Math.max(this.flushIntervalMs, this.retryAt - this.timers.now()));
  }

  /**
   * send posts one batch of a channel by fetch. It reports whether the batch left the queue
   * (accepted or refused for good); a failure that may pass later puts the batch back in front.
   */
  private send(channel: Channel, force = false): Promise<boolean> {
    if (this.inflight[channel] || this.queues[channel].length === 0) return Promise.resolve(false);
    if (!force && this.timers.now() < this.retryAt) {
      this.schedule(this.retryAt - this.timers.now());
      return Promise.resolve(false);
    }
    const batch = this.queues[channel].splice(0, this.batchSize);
    this.inflightEvents += batch.length;
    this.inflightBatch[channel] = batch;
    const p = this.post(channel, batch).finally(() => {
      this.inflight[channel] = undefined;
      this.inflightBatch[channel] = undefined;
    });
    this.inflight[channel] = p;
    return p;
  }

  private async post(channel: Channel, batch: object[]): Promise<boolean> {
    {
      let response: Response;
      try {
        response = await this.fetchImpl(this.baseUrl + paths[channel], {
          method: 'POST',
          headers: { Authorization: 'Bearer ' + this.clientKey, 'Content-Type': 'application/json' },
          body: JSON.stringify({ events: batch }),
        });
      } catch (err) {
        this.inflightEvents -= batch.length;
        return this.keep(channel, batch, 0, 'network error: ' + String(err));
      }
      this.inflightEvents -= batch.length;
      const status = response.status;
      if (status === 202) {
        const answer = (await response.json().catch(() => ({}))) as { accepted?: number; rejected?: number; errors?: unknown[] };
        this.counts.accepted += answer.accepted ?? batch.length;
        if (answer.rejected) {
          this.counts.rejected += answer.rejected;
          this.logger?.warn(`vexil: ${answer.rejected} ${channel} events refused`, JSON.stringify(answer.errors ?? []));
        }
        return true;
      }
      if (status === 429 || status === 408 || status >= 500) {
        const secs = Number(response.headers.get('Retry-After'));
        return this.keep(channel, batch, Number.isFinite(secs) && secs > 0 ? secs * 1000 : 0, `HTTP ${status}`);
      }
      const body = await response.text().catch(() => '');
      if (status === 401 || status === 403) {
        this.counts.dropped += batch.length;
        this.logger?.error(`vexil: the client key was refused sending ${channel} events (HTTP ${status}); ${batch.length} dropped`, body);
      } else {
        this.counts.rejected += batch.length;
        this.logger?.warn(`vexil: ${batch.length} ${channel} events refused (HTTP ${status})`, body);
      }
      return true;
    }
  }

  /** keep puts a failed batch back in front of its channel, within the bound, and waits before the next try. */
  private keep(channel: Channel, batch: object[], retryAfterMs: number, why: string): false {
    this.counts.retries++;
    const room = this.maxQueue - this.queued();
    const kept = batch.slice(0, Math.max(0, room));
    this.counts.dropped += batch.length - kept.length;
    this.queues[channel].unshift(...kept);
    this.retryAt = this.timers.now() + Math.max(retryAfterMs, this.flushIntervalMs);
    this.logger?.debug(`vexil: sending ${channel} events failed (${why}); ${kept.length} kept for a retry`);
    this.schedule(this.retryAt - this.timers.now());
    return false;
  }

  /**
   * sendBeacons hands everything that waits to sendBeacon, in bodies under the beacon quota, and
   * the batches on their way too: leaving the page may abort their fetch, and a batch that
   * arrives twice is stored once (same event ids).
   */
  private sendBeacons() {
    if (!this.beacon) return;
    for (const channel of Object.keys(paths) as Channel[]) {
      const url = this.baseUrl + paths[channel] + '?key=' + encodeURIComponent(this.clientKey);
      // A copy of the batch on its way: its fetch still accounts for it.
      const onItsWay = this.inflightBatch[channel];
      if (onItsWay && !this.beaconAll(channel, url, [...onItsWay])) return;
      if (!this.beaconAll(channel, url, this.queues[channel])) return;
    }
  }

  /** beaconAll beacons events, removing each one sent from the array, and reports whether all went. */
  private beaconAll(channel: Channel, url: string, events: object[]): boolean {
    while (events.length > 0) {
      // The largest prefix that fits the quota (at least one event).
      let n = Math.min(events.length, this.batchSize);
      let body = JSON.stringify({ events: events.slice(0, n) });
      while (n > 1 && body.length > beaconMaxBytes) {
        n = Math.ceil(n / 2);
        body = JSON.stringify({ events: events.slice(0, n) });
      }
      // text/plain is CORS-safelisted: the beacon needs no preflight.
      if (!this.beacon!(url, new Blob([body], { type: 'text/plain' }))) {
        // The browser's quota is used up: keep the rest for fetch if the page comes back.
        this.logger?.debug(`vexil: sendBeacon refused ${n} ${channel} events; kept`);
        return false;
      }
      events.splice(0, n);
      this.counts.beaconed += n;
    }
    return true;
  }
}
