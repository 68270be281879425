// A small shop page on Vexil: @openfeature/react-sdk with VexilWebProvider. The checkout button's
// text is a flag that may run an experiment (the package sends the exposure when the component
// reads it); "Buy" tracks the purchase goal; toggling a flag in Vexil re-renders the page through
// the event stream.
//
// Configure with the page's URL: ?vexil=http://127.0.0.1:8080&key=client-…&user=user-1
import { createRoot } from 'react-dom/client';
import { StrictMode, useState } from 'react';
import { OpenFeature } from '@openfeature/web-sdk';
import {
  OpenFeatureProvider,
  useBooleanFlagValue,
  useContextMutator,
  useStringFlagDetails,
  useTrack,
  useWhenProviderReady,
} from '@openfeature/react-sdk';
import { VexilWebProvider } from '@vexil-flags/web';

const params = new URLSearchParams(window.location.search);
const baseUrl = params.get('vexil') ?? 'http://127.0.0.1:8080';
const clientKey = params.get('key') ?? '';

// The provider is set once, before rendering; the components re-render when it is ready, when
// the context changes and when a flag changes.
OpenFeature.setProvider(new VexilWebProvider({ baseUrl, clientKey }), { targetingKey: params.get('user') ?? 'anonymous' });

function Checkout() {
  const checkout = useStringFlagDetails('checkout-button', 'Buy now');
  const { track } = useTrack();
  const [bought, setBought] = useState(0);
  return (
    <section>
      <button
        onClick={() => {
          track('purchase', { value: 42.5 });
          setBought((n) => n + 1);
        }}
      >
        {checkout.value}
      </button>
      <p>
        variation <code>{checkout.variant ?? '—'}</code> ({checkout.reason}
        {checkout.flagMetadata.experiment ? `, experiment ${String(checkout.flagMetadata.experiment)}` : ''}); bought {bought}
      </p>
    </section>
  );
}

function Banner() {
  return useBooleanFlagValue('banner', false) ? <p role="status">Free shipping this week</p> : null;
}

function SignIn() {
  // The page's provider is the default one (no domain): change the default context.
  const { setContext } = useContextMutator({ defaultContext: true });
  const [user, setUser] = useState('');
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        void setContext({ targetingKey: user });
      }}
    >
      <input value={user} onChange={(e) => setUser(e.target.value)} placeholder="user id" />
      <button type="submit">Sign in</button>
    </form>
  );
}

function Shop() {
  const ready = useWhenProviderReady({ suspendUntilReady: false });
  if (!ready) return <p>Loading flags…</p>;
  return (
    <>
      <Banner />
      <Checkout />
      <SignIn />
    </>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <OpenFeatureProvider>
      <Shop />
    </OpenFeatureProvider>
  </StrictMode>,
);
