import type {
  EvaluationContext,
  EvaluationDetails,
  FlagValue,
  Hook,
  HookContext,
  Logger,
  TrackingEventDetails,
} from '@openfeature/web-sdk';
import { OFREPWebProvider, type OFREPWebProviderOptions } from '@openfeature/ofrep-web-provider';

import { EventDelivery, type EventDeliveryOptions, type EventStats } from './events';
import { uuid } from './uuid';

/** Options of {@link VexilWebProvider}. Only baseUrl and clientKey are required. */
export interface VexilWebProviderOptions {
  /** Where Vexil's api role answers, without a path, e.g. https://flags.example.com. */
  baseUrl: string;
  /** The environment's client-side SDK key (client-…): public, it only gets evaluated values of client_side flags. */
  clientKey: string;
  /**
   * How changes reach the page. 'sse' (default): follow Vexil's event stream (the client
   * stream, /sdk/v1/stream?key=…, which the browser's EventSource resumes with Last-Event-ID)
   * and refetch the bulk evaluation on each change. 'polling': poll with If-None-Match every
   * pollIntervalMs. 'none': evaluate once, and on context changes.
   */
  changeDetection?: 'sse' | 'polling' | 'none';
  /** Polling period in milliseconds for 'polling' (default 30000); with 'sse', a positive value is the fallback when the stream fails. */
  pollIntervalMs?: number;
  /** Exposure events: sent when the page reads a flag served by a running experiment. Default true. */
  exposures?: boolean;
  /** Batching of track() and exposure events. */
  events?: Pick<EventDeliveryOptions, 'flushIntervalMs' | 'batchSize' | 'maxQueue' | 'beaconOnPageHide'>;
  /** A fetch to use instead of the global one (tests, instrumentation). */
  fetchImplementation?: typeof fetch;
  /** Options passed to @openfeature/ofrep-web-provider as they are (cacheMode, timeoutMs, …). */
  ofrep?: Omit<OFREPWebProviderOptions, 'baseUrl' | 'headers' | 'headersFactory' | 'fetchImplementation'>;
}

/** How many exposures (user, flag, experiment, variation) a page remembers having sent. */
const rememberedExposures = 10_000;

/**
 * VexilWebProvider is the OpenFeature web provider for Vexil: @openfeature/ofrep-web-provider
 * for evaluation (one bulk evaluation per context, answered from memory afterwards; SSE-driven
 * refresh), plus OpenFeature track() and experiment exposure events, batched and sent with
 * sendBeacon when the page is hidden or left.
 *
 * ```ts
 * await OpenFeature.setProviderAndWait(new VexilWebProvider({ baseUrl, clientKey }), { targetingKey: user.id });
 * OpenFeature.getClient().track('purchase', { value: 42.5 });
 * ```
 */
export class VexilWebProvider extends OFREPWebProvider {
  override readonly metadata = { name: 'Vexil' };
  override readonly hooks: Hook[];
  private readonly delivery: EventDelivery;
  private readonly sentExposures = new Set<string>();
  private readonly vexilLogger?: Logger;

  constructor(options: VexilWebProviderOptions, logger?: Logger) {
    if (!options?.baseUrl) throw new Error('VexilWebProvider: baseUrl is required');
    if (!options.clientKey) throw new Error('VexilWebProvider: clientKey is required');
    const changeDetection = options.changeDetection ?? 'sse';
    super(
      {
        ...options.ofrep,
        baseUrl: options.baseUrl,
        headers: [['Authorization', 'Bearer ' + options.clientKey]],
        fetchImplementation: options.fetchImplementation,
        changeDetection,
        pollInterval: options.pollIntervalMs ?? (changeDetection === 'polling' ? 30_000 : 0),
      },
      logger,
    );
    this.vexilLogger = logger;
    this.delivery = new EventDelivery({
      ...options.events,
      baseUrl: options.baseUrl,
      clientKey: options.clientKey,
      fetchImplementation: options.fetchImplementation,
      logger: logger ?? console,
    });
    this.hooks = options.exposures === false ? [] : [{ after: (ctx, details) => this.exposed(ctx, details) }];
  }

  /**
   * track records an OpenFeature tracking event (client.track(name, details)) as a goal event:
   * goal key = the event name, user = the context's targetingKey, value = details.value. Only the
   * targeting key of the context is sent (the server stores nothing else of it). It never waits:
   * the event joins the batch.
   */
  track(trackingEventName: string, context: EvaluationContext, trackingEventDetails: TrackingEventDetails): void {
    const targetingKey = context?.targetingKey;
    if (!targetingKey) {
      this.vexilLogger?.warn(`vexil: track("${trackingEventName}") without a targetingKey in the context is not sent (a goal belongs to a user)`);
      return;
    }
    const event: Record<string, unknown> = {
      eventName: trackingEventName,
      context: { targetingKey },
      eventId: uuid(),
      timestamp: new Date().toISOString(),
    };
    if (trackingEventDetails && Object.keys(trackingEventDetails).length > 0) event.trackingEventDetails = trackingEventDetails;
    this.delivery.enqueue('track', event);
  }

  /** flush sends every waiting event now and resolves when the server answered. */
  flush(): Promise<void> {
    return this.delivery.flush();
  }

  /** eventStats counts what happened to track() and exposure events. */
  eventStats(): EventStats {
    return this.delivery.stats();
  }

  /** onClose (OpenFeature.close(), or replacing the provider) sends what waits, then stops. */
  override async onClose(): Promise<void> {
    await super.onClose?.();
    await this.delivery.close();
  }

  /**
   * exposed is the after hook: a flag read that a running experiment served (its metadata names
   * the experiment) becomes one exposure event, the first time this page sees that user, flag,
   * experiment and variation together (the analysis only uses each user's first exposure).
   */
  private exposed(ctx: Readonly<HookContext<FlagValue>>, details: EvaluationDetails<FlagValue>) {
    const experiment = details.flagMetadata?.experiment;
    const user = ctx.context?.targetingKey;
    if (typeof experiment !== 'string' || !experiment || !user || !details.variant || details.errorCode) return;
    const key = [user, details.flagKey, experiment, details.variant].join('\u0000');
    if (this.sentExposures.has(key)) return;
    if (this.sentExposures.size >= rememberedExposures) this.sentExposures.clear();
    if (!this.delivery.enqueue('exposure', {
      kind: 'evaluation',
      event_id: uuid(),
      occurred_at: new Date().toISOString(),
      flag_key: details.flagKey,
      variation_key: details.variant,
      reason: details.reason,
      user_key: user,
      experiment_key: experiment,
    })) return; // dropped (queue full): a later read tries again
    this.sentExposures.add(key);
  }
}
