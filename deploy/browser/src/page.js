// The browser test's page: the OpenFeature web SDK with the OFREP web provider, as a web page on
// another origin would use them with a client-side key. The Go test (services/platform/
// browser_test.go) drives it through the DevTools protocol: it calls start() for each mode and
// polls read() and state() until what it expects shows up.
//
// Everything the test checks is recorded here, from the outside of the provider: the requests it
// makes (through fetchImplementation), the EventSource connections it opens, and the events the
// SDK emits. Nothing in here waits on a timer.
import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

const modes = {};

// The provider opens its SSE connection with the global EventSource: record each one, the
// messages it receives and its errors, so the test can tell an SSE-driven refetch from a poll.
const NativeEventSource = window.EventSource;
const streams = [];
class RecordingEventSource extends NativeEventSource {
  constructor(url, init) {
    super(url, init);
    const record = { url: String(url), opened: 0, messages: [], errors: 0 };
    streams.push(record);
    this.addEventListener('open', () => record.opened++);
    this.addEventListener('message', (e) => record.messages.push({ id: e.lastEventId, data: e.data }));
    this.addEventListener('error', () => record.errors++);
  }
}
window.EventSource = RecordingEventSource;

// A logger for the provider that keeps what it says and passes warnings and errors on to the
// console, where the test reads them.
function logger(mode) {
  const say = (level) => (...args) => {
    mode.log.push(level + ': ' + args.map(String).join(' '));
    if (level === 'error') console.error('[ofrep-web-provider]', ...args);
    if (level === 'warn') console.warn('[ofrep-web-provider]', ...args);
  };
  return { error: say('error'), warn: say('warn'), info: say('info'), debug: say('debug') };
}

// start sets up one provider in its own OpenFeature domain, so several modes run side by side in
// one page: "polling" (ETag/If-None-Match polling) or "sse" (the event stream the bulk answer
// advertises, a refetch on each refetchEvaluation event).
//
// options: { mode, baseUrl, clientKey, context, pollInterval }
function start(options) {
  const name = options.mode;
  const mode = {
    ready: false,
    failed: null,
    requests: [], // every OFREP call: path and query, If-None-Match sent, status, ETag readable
    changes: [], // ConfigurationChanged events: the flags each one names
    log: [],
  };
  modes[name] = mode;

  // The provider passes a Request (its headers inside); a plain URL and init work too.
  const fetchImplementation = async (input, init) => {
    const req = new Request(input, init);
    const url = new URL(req.url);
    const request = {
      path: url.pathname + url.search,
      ifNoneMatch: req.headers.get('If-None-Match'),
      status: 0,
      etag: null,
    };
    mode.requests.push(request);
    const response = await fetch(req);
    request.status = response.status;
    // Only readable when the server exposes it (Access-Control-Expose-Headers: ETag).
    request.etag = response.headers.get('ETag');
    return response;
  };

  const provider = new OFREPWebProvider(
    {
      baseUrl: options.baseUrl,
      headers: [['Authorization', 'Bearer ' + options.clientKey]],
      fetchImplementation,
      changeDetection: name === 'sse' ? 'sse' : 'polling',
      pollInterval: name === 'sse' ? 0 : options.pollInterval,
      // Each run starts from the network: a value from an earlier page's localStorage would
      // hide whether this one reached the server.
      cacheMode: 'disabled',
    },
    logger(mode),
  );
  const client = OpenFeature.getClient(name);
  client.addHandler(ProviderEvents.ConfigurationChanged, (details) => {
    mode.changes.push({ flagsChanged: (details && details.flagsChanged) || [] });
  });
  OpenFeature.setProviderAndWait(name, provider, options.context).then(
    () => {
      mode.ready = true;
    },
    (err) => {
      mode.failed = String(err);
      console.error('provider for ' + name + ' failed to start:', err);
    },
  );
}

// read evaluates each flag through the mode's client with the type's method: flags is a list of
// { key, type: 'boolean'|'string'|'number'|'object', default }.
function read(name, flags) {
  const client = OpenFeature.getClient(name);
  const out = {};
  for (const f of flags) {
    let d;
    switch (f.type) {
      case 'boolean':
        d = client.getBooleanDetails(f.key, f.default);
        break;
      case 'string':
        d = client.getStringDetails(f.key, f.default);
        break;
      case 'number':
        d = client.getNumberDetails(f.key, f.default);
        break;
      case 'object':
        d = client.getObjectDetails(f.key, f.default);
        break;
      default:
        throw new Error('unknown flag type ' + f.type);
    }
    out[f.key] = { value: d.value, variant: d.variant, reason: d.reason, errorCode: d.errorCode || '' };
  }
  return out;
}

// state is what the test polls: each mode's record and the EventSource connections.
function state() {
  return { modes, streams };
}

window.vexilBrowserTest = { start, read, state };
