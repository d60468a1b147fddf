import { useState } from 'preact/hooks';
import { signIn } from '../api.js';

/** Asked for on a 401: the token is checked against the API, then kept for this browser session. */
export function SignIn({ refused }: { refused: boolean }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(
    refused ? 'The saved token was not accepted any more. Enter the current one.' : undefined,
  );
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!token.trim()) return;
    setBusy(true);
    setError(undefined);
    try {
      if (!(await signIn(token.trim()))) setError('That token was not accepted.');
    } catch {
      setError('Cannot reach the API to check the token.');
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="signin-wrap">
      <form class="panel signin" onSubmit={submit} data-testid="signin-form">
        <h2>This dashboard needs the API token</h2>
        <p class="muted">
          It is kept in this browser tab's session only and sent to the API with each request. Ask the
          pipeline's operators for it.
        </p>
        <label class="field field-block">
          <span>API token</span>
          <input
            type="password"
            autocomplete="off"
            spellcheck={false}
            data-testid="signin-token"
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
          />
        </label>
        {error && (
          <div class="banner banner-error" role="alert" data-testid="signin-error">
            {error}
          </div>
        )}
        <button type="submit" class="primary" disabled={busy || !token.trim()} data-testid="signin-submit">
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </div>
  );
}
