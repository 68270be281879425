import { describe, expect, it } from 'vitest';

import { EventDelivery, type Timers } from '../src/events';

// A server that records every request and answers from a script (default 202 accepting all).
function server(script: Array<(events: object[]) => Response> = []) {
  const requests: Array<{ url: string; auth: string | null; type: string | null; events: Array<Record<string, unknown>> }> = [];
  const fetchImplementation = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const headers = new Headers(init?.headers);
    const events = JSON.parse(String(init?.body)).events;
    requests.push({ url: String(input), auth: headers.get('Authorization'), type: headers.get('Content-Type'), events });
    const answer = script.shift();
    if (answer) return answer(events);
    return Response.json({ accepted: events.length, rejected: 0, errors: [] }, { status: 202 });
  };
  return { requests, fetchImplementation };
}

// Timers driven by the test: nothing fires until run() says so.
function manualTimers() {
  let now = 1_000_000;
  let next = 1;
  const pending = new Map<number, { at: number; fn: () => void }>();
  const timers: Timers = {
    setTimeout: (fn, ms) => {
      const id = next++;
      pending.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout: (id) => pending.delete(id as number),
    now: () => now,
  };
  // advance moves the clock and fires what is due, in order.
  const advance = async (ms: number) => {
    now += ms;
    for (const [id, t] of [...pending].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at <= now) {
        pending.delete(id);
        t.fn();
      }
    }
    await settle();
  };
  return { timers, advance, pending };
}

// settle lets every promise chain started so far run to its end.
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

function lifecycle() {
  const win = new EventTarget();
  const doc = Object.assign(new EventTarget(), { visibilityState: 'visible' });
  return { window: win, document: doc };
}

const goal = (i: number) => ({ eventName: 'purchase', context: { targetingKey: 'user-' + i }, eventId: 'id-' + i });

describe('EventDelivery', () => {
  it('sends a full batch at once and the rest after the flush interval, with the key in Authorization', async () => {
    const s = server();
    const t = manualTimers();
    const d = new EventDelivery({ baseUrl: 'https://flags.test/', clientKey: 'client-k', batchSize: 3, flushIntervalMs: 2000, fetchImplementation: s.fetchImplementation, timers: t.timers, lifecycle: lifecycle() });
    for (let i = 0; i < 4; i++) d.enqueue('track', goal(i));
    await settle();
    expect(s.requests).toHaveLength(1);
    expect(s.requests[0]).toMatchObject({ url: 'https://flags.test/ofrep/v1/track', auth: 'Bearer client-k', type: 'application/json' });
    expect(s.requests[0].events.map((e) => e.eventId)).toEqual(['id-0', 'id-1', 'id-2']);
    await t.advance(1999);
    expect(s.requests).toHaveLength(1);
    await t.advance(1);
    expect(s.requests).toHaveLength(2);
    expect(s.requests[1].events.map((e) => e.eventId)).toEqual(['id-3']);
    expect(d.stats()).toMatchObject({ queued: 0, accepted: 4, dropped: 0 });
  });

  it('sends exposures to /sdk/v1/events and goals to /ofrep/v1/track', async () => {
    const s = server();
    const d = new EventDelivery({ baseUrl: 'https://flags.test', clientKey: 'client-k', fetchImplementation: s.fetchImplementation, timers: manualTimers().timers, lifecycle: lifecycle() });
    d.enqueue('exposure', { kind: 'evaluation', flag_key: 'checkout' });
    d.enqueue('track', goal(1));
    await d.flush();
    expect(s.requests.map((r) => r.url).sort()).toEqual(['https://flags.test/ofrep/v1/track', 'https://flags.test/sdk/v1/events']);
  });

  it('keeps a batch the server could not take, waits out Retry-After, and sends the same events again', async () => {
    const unavailable = () => new Response('{"code":"unavailable"}', { status: 503, headers: { 'Retry-After': '7' } });
    const s = server([unavailable]);
    const t = manualTimers();
    const d = new EventDelivery({ baseUrl: 'https://flags.test', clientKey: 'k', flushIntervalMs: 1000, fetchImplementation: s.fetchImplementation, timers: t.timers, lifecycle: lifecycle() });
    d.enqueue('track', goal(1));
    d.enqueue('track', goal(2));
    await t.advance(1000);
    expect(s.requests).toHaveLength(1);
    expect(d.stats()).toMatchObject({ queued: 2, retries: 1, accepted: 0 });
    d.enqueue('track', goal(3));
    await t.advance(6000); // inside Retry-After: nothing is sent
    expect(s.requests).toHaveLength(1);
    await t.advance(1000);
    expect(s.requests).toHaveLength(2);
    expect(s.requests[1].events.map((e) => e.eventId)).toEqual(['id-1', 'id-2', 'id-3']);
    expect(d.stats()).toMatchObject({ queued: 0, accepted: 3, retries: 1 });
  });

  it('retries after a network error and a 429', async () => {
    const s = server([
      () => {
        throw new TypeError('Failed to fetch');
      },
      () => new Response('{}', { status: 429, headers: { 'Retry-After': '1' } }),
    ]);
    const t = manualTimers();
    const d = new EventDelivery({ baseUrl: 'https://flags.test', clientKey: 'k', flushIntervalMs: 500, fetchImplementation: s.fetchImplementation, timers: t.timers, lifecycle: lifecycle() });
    d.enqueue('exposure', { event_id: 'e1' });
    for (let i = 0; i < 4 && d.stats().accepted === 0; i++) await t.advance(1000);
    expect(s.requests.map((r) => r.events)).toEqual([[{ event_id: 'e1' }], [{ event_id: 'e1' }], [{ event_id: 'e1' }]]);
    expect(d.stats()).toMatchObject({ accepted: 1, retries: 2, queued: 0 });
  });

  it('drops past the bound, counts the drops, and never waits', async () => {
    const s = server([() => new Response('', { status: 503 })]);
    const t = manualTimers();
    const d = new EventDelivery({ baseUrl: 'https://flags.test', clientKey: 'k', batchSize: 2, maxQueue: 3, fetchImplementation: s.fetchImplementation, timers: t.timers, lifecycle: lifecycle() });
    const taken = [0, 1, 2, 3, 4].map((i) => d.enqueue('track', goal(i)));
    expect(taken).toEqual([true, true, true, false, false]);
    expect(d.stats()).toMatchObject({ queued: 3, dropped: 2 }); // two on their way, one waiting
    await settle(); // the 503: both come back, within the bound
    expect(d.stats()).toMatchObject({ queued: 3, dropped: 2, retries: 1 });
    await t.advance(5000);
    await d.flush();
    expect(d.stats()).toMatchObject({ queued: 0, accepted: 3, dropped: 2 });
    const sent = s.requests.slice(1).flatMap((r) => r.events.map((e) => e.eventId));
    expect(sent).toEqual(['id-0', 'id-1', 'id-2']);
  });

  it('counts item errors as rejected and drops batches the server refuses for good', async () => {
    const s = server([
      (events) => Response.json({ accepted: events.length - 1, rejected: 1, errors: [{ index: 0, field: 'context.targetingKey' }] }, { status: 202 }),
      () => Response.json({ code: 'unauthorized' }, { status: 401 }),
    ]);
    const quiet = { warn() {}, error() {}, debug() {} };
    const d = new EventDelivery({ baseUrl: 'https://flags.test', clientKey: 'k', fetchImplementation: s.fetchImplementation, timers: manualTimers().timers, lifecycle: lifecycle(), logger: quiet });
    d.enqueue('track', goal(1));
    d.enqueue('track', goal(2));
    await d.flush();
    d.enqueue('track', goal(3));
    await d.flush();
    expect(d.stats()).toMatchObject({ queued: 0, accepted: 1, rejected: 1, dropped: 1 });
  });

  it('hands everything to sendBeacon when the page is hidden: key in the URL, text/plain, bodies under the quota', async () => {
    const s = server();
    const beacons: Array<{ url: string; type: string; events: Array<Record<string, unknown>>; size: number }> = [];
    const sendBeacon = (url: string, data: Blob) => {
      beacons.push({ url, type: data.type, events: [], size: data.size });
      return true;
    };
    const page = lifecycle();
    const d = new EventDelivery({ baseUrl: 'https://flags.test', clientKey: 'client-k', batchSize: 1000, fetchImplementation: s.fetchImplementation, sendBeacon, timers: manualTimers().timers, lifecycle: page });
    const pad = 'x'.repeat(200);
    for (let i = 0; i < 500; i++) d.enqueue('track', { ...goal(i), trackingEventDetails: { note: pad } });
    d.enqueue('exposure', { event_id: 'e1' });
    page.document.visibilityState = 'hidden';
    page.document.dispatchEvent(new Event('visibilitychange'));
    expect(s.requests).toHaveLength(0);
    expect(beacons.length).toBeGreaterThan(2); // 500 events of ~280 bytes do not fit one beacon
    for (const b of beacons) {
      expect(b.type).toBe('text/plain');
      expect(b.size).toBeLessThanOrEqual(60 * 1024);
    }
    expect(beacons.slice(0, -1).every((b) => b.url === 'https://flags.test/ofrep/v1/track?key=client-k')).toBe(true);
    expect(beacons.at(-1)!.url).toBe('https://flags.test/sdk/v1/events?key=client-k');
    expect(d.stats()).toMatchObject({ queued: 0, beaconed: 501 });
  });

  it('keeps what sendBeacon refuses and sends it by fetch later; pagehide sends too', async () => {
    const s = server();
    let allow = false;
    const page = lifecycle();
    const t = manualTimers();
    const d = new EventDelivery({ baseUrl: 'https://flags.test', clientKey: 'k', fetchImplementation: s.fetchImplementation, sendBeacon: () => allow, timers: t.timers, lifecycle: page });
    d.enqueue('track', goal(1));
    page.window.dispatchEvent(new Event('pagehide'));
    expect(d.stats()).toMatchObject({ queued: 1, beaconed: 0 });
    allow = true;
    page.window.dispatchEvent(new Event('pagehide'));
    expect(d.stats()).toMatchObject({ queued: 0, beaconed: 1 });
    expect(s.requests).toHaveLength(0);
  });

  it('close waits for a batch on its way, sends the rest, then refuses new events', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = server();
    const slow = async (input: RequestInfo | URL, init?: RequestInit) => {
      await gate;
      return s.fetchImplementation(input, init);
    };
    const page = lifecycle();
    const d = new EventDelivery({ baseUrl: 'https://flags.test', clientKey: 'k', batchSize: 1, fetchImplementation: slow, timers: manualTimers().timers, lifecycle: page, sendBeacon: () => true });
    d.enqueue('track', goal(1)); // on its way at once
    d.enqueue('track', goal(2));
    const closed = d.close();
    release();
    await closed;
    expect(s.requests.map((r) => r.events[0].eventId)).toEqual(['id-1', 'id-2']);
    expect(d.enqueue('track', goal(3))).toBe(false);
    page.document.visibilityState = 'hidden';
    page.document.dispatchEvent(new Event('visibilitychange')); // listeners are gone
    expect(d.stats()).toMatchObject({ accepted: 2, beaconed: 0, dropped: 1 });
  });
});

describe('EventDelivery on page hide', () => {
  it('beacons a batch on its way too (leaving may abort its fetch), with the same event ids', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = server();
    const slow = async (input: RequestInfo | URL, init?: RequestInit) => {
      await gate;
      return s.fetchImplementation(input, init);
    };
    const beacons: string[] = [];
    const page = lifecycle();
    const d = new EventDelivery({
      baseUrl: 'https://flags.test', clientKey: 'k', batchSize: 2, fetchImplementation: slow, timers: manualTimers().timers, lifecycle: page,
      sendBeacon: (_url, data) => {
        void data.text().then((t) => beacons.push(t));
        return true;
      },
    });
    for (let i = 0; i < 3; i++) d.enqueue('track', goal(i)); // 0 and 1 on their way, 2 waiting
    page.window.dispatchEvent(new Event('pagehide'));
    await settle();
    const beaconed = beacons.flatMap((b) => JSON.parse(b).events.map((e: { eventId: string }) => e.eventId));
    expect(beaconed).toEqual(['id-0', 'id-1', 'id-2']);
    expect(d.stats()).toMatchObject({ queued: 2, beaconed: 3 }); // the fetch still holds its batch
    release();
    await d.flush();
    expect(s.requests.flatMap((r) => r.events.map((e) => e.eventId))).toEqual(['id-0', 'id-1']);
    expect(d.stats()).toMatchObject({ queued: 0, accepted: 2, beaconed: 3 });
  });

  it('close beacons what fetch could not deliver', async () => {
    const s = server([() => new Response('', { status: 503 })]);
    const beacons: string[] = [];
    const d = new EventDelivery({
      baseUrl: 'https://flags.test', clientKey: 'k', fetchImplementation: s.fetchImplementation, timers: manualTimers().timers, lifecycle: lifecycle(),
      sendBeacon: (url) => beacons.push(url) > 0,
    });
    d.enqueue('exposure', { event_id: 'e1' });
    await d.close();
    expect(s.requests).toHaveLength(1);
    expect(beacons).toEqual(['https://flags.test/sdk/v1/events?key=k']);
    expect(d.stats()).toMatchObject({ queued: 0, beaconed: 1 });
  });
});
