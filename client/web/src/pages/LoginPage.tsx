import { useState, type FormEvent } from 'react';
import { t } from '../i18n.js';
import { Session } from '../session.js';

export function LoginPage({ onLoggedIn, notice }: { onLoggedIn: (session: Session) => void; notice?: string | undefined }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      onLoggedIn(await Session.login(username.trim(), password));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="card login" onSubmit={(e) => void submit(e)} aria-labelledby="login-title">
      <h1 id="login-title">{t('loginTitle')}</h1>
      {notice && <p className="notice">{notice}</p>}
      <label>
        {t('username')}
        <input name="username" autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} required />
      </label>
      <label>
        {t('password')}
        <input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
      </label>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <button type="submit" disabled={busy}>
        {busy ? t('signingIn') : t('signIn')}
      </button>
    </form>
  );
}
