import { afterEach, describe, expect, it } from 'vitest';
import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';

import { VexilWebProvider } from '../src';

// A fake Vexil: the bulk evaluation puts users whose key ends in an even digit in variation
// "b" of the experiment "checkout-exp", lists the SSE stream, and records event posts.
function fakeVexil() {
  let version = 1;
  const evaluations: Array<{ url: string; context: Record<string, unknown> }> = [];
  const posts: Record<string, Array<Record<string, unknown>>> = { '/ofrep/v1/track': [], '/sdk/v1/events': [] };
  const fetchImplementation = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const req = new Request(input, init);
    const url = new URL(req.url);
    expect(req.headers.get('Authorization')).toBe('Bearer client-k');
    const body = await req.json();
    if (url.pathname === '/ofrep/v1/evaluate/flags') {
      evaluations.push({ url: url.pathname + url.search, context: body.context });
      const user = String(body.context.targetingKey ?? '');
      const variant = Number(user.at(-1)) % 2 === 0 ? 'b' : 'a';
      return Response.json(
        {
          flags: [
            { key: 'checkout', value: variant.toUpperCase(), variant, reason: 'SPLIT', metadata: { flagVersion: version, experiment: 'checkout-exp' } },
            { key: 'banner', value: version > 1, variant: String(version > 1), reason: 'DEFAULT', metadata: { flagVersion: version } },
          ],
          eventStreams: [{ type: 'sse', url: 'https://flags.test/sdk/v1/stream?key=client-k', inactivityDelaySec: 120 }],
          metadata: { clientVersion: 'v' + version },
        },
        { headers: { ETag: `"v${version}-${user}"` } },
      );
    }
    if (url.pathname in posts) {
      posts[url.pathname].push(...body.events);
      return Response.json({ accepted: body.events.length, rejected: 0, errors: [] }, { status: 202 });
    }
    return Response.json({ code: 'not_found' }, { status: 404 });
  };
  return { evaluations, posts, fetchImplementation, change: () => version++ };
}

// The browser's EventSource, recorded: the test sends messages through it.
class FakeEventSource extends EventTarget {
  static opened: FakeEventSource[] = [];
  readyState = 1;
  constructor(readonly url: string) {
    super();
    FakeEventSource.opened.push(this);
  }
  send(data: object, lastEventId: string) {
    this.dispatchEvent(new MessageEvent('message', { data: JSON.stringify(data), lastEventId }));
  }
  close() {
    this.readyState = 2;
  }
}
(globalThis as unknown as { EventSource: unknown }).EventSource = FakeEventSource;

const quiet = { error() {}, warn() {}, info() {}, debug() {} };

afterEach(async () => {
  await OpenFeature.clearProviders();
  FakeEventSource.opened = [];
});

async function start(domain: string, vexil: ReturnType<typeof fakeVexil>, targetingKey: string, exposures = true) {
  const provider = new VexilWebProvider(
    { baseUrl: 'https://flags.test', clientKey: 'client-k', fetchImplementation: vexil.fetchImplementation, exposures, ofrep: { cacheMode: 'disabled' } },
    quiet,
  );
  await OpenFeature.setProviderAndWait(domain, provider, { targetingKey, plan: 'pro' });
  return { provider, client: OpenFeature.getClient(domain) };
}

describe('VexilWebProvider', () => {
  it('evaluates through OFREP with the client key and sends one exposure per user, flag and variation', async () => {
    const vexil = fakeVexil();
    const { provider, client } = await start('exposures', vexil, 'user-2');
    expect(client.getStringDetails('checkout', 'none')).toMatchObject({ value: 'B', variant: 'b', reason: 'SPLIT' });
    client.getStringValue('checkout', 'none'); // read again: no second exposure
    client.getBooleanValue('banner', false); // no experiment: no exposure
    await OpenFeature.setContext('exposures', { targetingKey: 'user-3' });
    expect(client.getStringValue('checkout', 'none')).toBe('A');
    await provider.flush();
    const exposures = vexil.posts['/sdk/v1/events'];
    expect(exposures.map((e) => [e.user_key, e.variation_key])).toEqual([['user-2', 'b'], ['user-3', 'a']]);
    for (const e of exposures) {
      expect(e).toMatchObject({ kind: 'evaluation', flag_key: 'checkout', experiment_key: 'checkout-exp', reason: 'SPLIT' });
      expect(e.event_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(Math.abs(Date.parse(String(e.occurred_at)) - Date.now())).toBeLessThan(60_000);
    }
    expect(vexil.evaluations.map((e) => e.context.targetingKey)).toEqual(['user-2', 'user-3']);
  });

  it('sends no exposure when exposures are off', async () => {
    const vexil = fakeVexil();
    const { provider, client } = await start('no-exposures', vexil, 'user-4', false);
    expect(client.getStringValue('checkout', 'none')).toBe('B');
    await provider.flush();
    expect(vexil.posts['/sdk/v1/events']).toEqual([]);
  });

  it("sends OpenFeature track() calls as goal events with the context's targeting key only", async () => {
    const vexil = fakeVexil();
    const { provider, client } = await start('track', vexil, 'user-5');
    client.track('purchase', { value: 42.5, currency: 'EUR' });
    client.track('signup');
    await OpenFeature.setContext('track', { plan: 'free' }); // no user: nothing to attribute to
    client.track('purchase', { value: 1 });
    await provider.flush();
    const calls = vexil.posts['/ofrep/v1/track'];
    expect(calls).toHaveLength(2);
    expect(calls[0]).toMatchObject({ eventName: 'purchase', context: { targetingKey: 'user-5' }, trackingEventDetails: { value: 42.5, currency: 'EUR' } });
    expect(calls[1]).toMatchObject({ eventName: 'signup', context: { targetingKey: 'user-5' } });
    expect(calls[0].context).toEqual({ targetingKey: 'user-5' });
    expect(new Set(calls.map((c) => c.eventId)).size).toBe(2);
    expect(typeof calls[0].timestamp).toBe('string');
  });

  it('follows the event stream the bulk answer lists: a refetchEvaluation event refetches and names the changed flags', async () => {
    const vexil = fakeVexil();
    const { client } = await start('sse', vexil, 'user-6');
    expect(FakeEventSource.opened.map((e) => e.url)).toEqual(['https://flags.test/sdk/v1/stream?key=client-k']);
    expect(client.getBooleanValue('banner', true)).toBe(false);
    const changed = new Promise<string[]>((resolve) =>
      client.addHandler(ProviderEvents.ConfigurationChanged, (d) => resolve(d?.flagsChanged ?? [])),
    );
    vexil.change();
    FakeEventSource.opened[0].send({ type: 'refetchEvaluation', etag: '"v2"', flags: ['banner'] }, '2');
    expect(await changed).toContain('banner');
    expect(client.getBooleanValue('banner', false)).toBe(true);
    expect(vexil.evaluations.at(-1)!.url).toContain('flagConfigEtag=');
  });

  it('sends what waits when OpenFeature closes', async () => {
    const vexil = fakeVexil();
    const { client } = await start('close', vexil, 'user-8');
    client.getStringValue('checkout', 'none');
    client.track('purchase');
    await OpenFeature.close();
    expect(vexil.posts['/ofrep/v1/track']).toHaveLength(1);
    expect(vexil.posts['/sdk/v1/events']).toHaveLength(1);
  });

  it('refuses to start without a base URL or a client key', () => {
    expect(() => new VexilWebProvider({ baseUrl: '', clientKey: 'k' })).toThrow(/baseUrl/);
    expect(() => new VexilWebProvider({ baseUrl: 'https://flags.test', clientKey: '' })).toThrow(/clientKey/);
  });
});
