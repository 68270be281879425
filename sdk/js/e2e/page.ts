// The page of the browser test of this package (services/platform/sdkjs_test.go): the OpenFeature
// web SDK with VexilWebProvider, bundled from the sources (esbuild), served from another origin
// than Vexil's. The Go test drives it through the DevTools protocol with window.vexilSdkTest.
import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';

import { VexilWebProvider, type VexilWebProviderOptions } from '../src';

const state = {
  ready: false,
  streamsOpened: 0, // EventSource connections opened (the provider's stream, reconnects included)
  failed: '',
  changes: [] as string[][],
  log: [] as string[],
};
let provider: VexilWebProvider | undefined;

// Count the stream's (re)connections: the provider uses the global EventSource.
const NativeEventSource = window.EventSource;
window.EventSource = class extends NativeEventSource {
  constructor(url: string | URL, init?: EventSourceInit) {
    super(url, init);
    this.addEventListener('open', () => state.streamsOpened++);
  }
};

// The provider's logger: kept for the test's failure messages; warnings and errors also go to
// the console, which the test reads (an error there fails it).
const logger = {
  error: (...a: unknown[]) => {
    state.log.push('error: ' + a.map(String).join(' '));
    console.error('[vexil]', ...a);
  },
  warn: (...a: unknown[]) => {
    state.log.push('warn: ' + a.map(String).join(' '));
    console.warn('[vexil]', ...a);
  },
  info: (...a: unknown[]) => state.log.push('info: ' + a.map(String).join(' ')),
  debug: (...a: unknown[]) => state.log.push('debug: ' + a.map(String).join(' ')),
};

function start(options: VexilWebProviderOptions & { context: Record<string, string> }) {
  const { context, ...rest } = options;
  provider = new VexilWebProvider({ ...rest, ofrep: { cacheMode: 'disabled' } }, logger);
  OpenFeature.getClient().addHandler(ProviderEvents.ConfigurationChanged, (d) => state.changes.push(d?.flagsChanged ?? []));
  OpenFeature.setProviderAndWait(provider, context).then(
    () => (state.ready = true),
    (err) => {
      state.failed = String(err);
      console.error('the Vexil provider failed to start:', err);
    },
  );
}

// visit plays one user's visit: the context becomes the user (a bulk evaluation), the page reads
// the flags it names (each twice, as re-renders do), and tracks the goals it names.
async function visit(user: string, read: string[], goals: Array<{ name: string; value?: number }>) {
  await OpenFeature.setContext({ targetingKey: user });
  const client = OpenFeature.getClient();
  const seen: Record<string, { value: unknown; variant?: string; reason?: string; experiment?: unknown }> = {};
  for (const key of read) {
    client.getStringValue(key, 'code default');
    const d = client.getStringDetails(key, 'code default');
    seen[key] = { value: d.value, variant: d.variant, reason: d.reason, experiment: d.flagMetadata.experiment };
  }
  for (const g of goals) client.track(g.name, g.value === undefined ? {} : { value: g.value });
  return seen;
}

// evaluateAll reads every flag for each context, with the OpenFeature method of the flag's type
// (the conformance test compares the answers with the server's): flags maps a key to 'boolean',
// 'string', 'number' or 'object'. One context change (one bulk evaluation) per context.
async function evaluateAll(contexts: Array<Record<string, never>>, flags: Record<string, string>) {
  const client = OpenFeature.getClient();
  const out = [];
  for (const context of contexts) {
    await OpenFeature.setContext(context);
    const answers: Record<string, unknown> = {};
    for (const [key, type] of Object.entries(flags)) {
      const d =
        type === 'boolean'
          ? client.getBooleanDetails(key, false)
          : type === 'string'
            ? client.getStringDetails(key, '')
            : type === 'number'
              ? client.getNumberDetails(key, 0)
              : client.getObjectDetails(key, {});
      answers[key] = { value: d.value, variant: d.variant ?? '', reason: d.reason ?? '', errorCode: d.errorCode ?? '', experiment: d.flagMetadata.experiment ?? '' };
    }
    out.push(answers);
  }
  return out;
}

function readBoolean(key: string) {
  return OpenFeature.getClient().getBooleanDetails(key, false);
}

function stats() {
  return { ...state, events: provider?.eventStats() };
}

(window as unknown as { vexilSdkTest: unknown }).vexilSdkTest = { start, visit, evaluateAll, readBoolean, stats };
