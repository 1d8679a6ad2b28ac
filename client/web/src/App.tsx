import { Suspense, lazy, useEffect, useState } from 'react';
import { setLang, t, useLang } from './i18n.js';
import { HomePage } from './pages/HomePage.js';
import { LoginPage } from './pages/LoginPage.js';
import { navigate, parseRoute, paths, usePathname } from './router.js';
import { Session } from './session.js';

// The room (mediasoup-client, socket.io) loads only when a room is opened: the login and home
// pages stay light on a satellite link.
const RoomPage = lazy(() => import('./pages/RoomPage.js').then((m) => ({ default: m.RoomPage })));

export function App() {
  const lang = useLang();
  const pathname = usePathname();
  const [session, setSession] = useState<Session | undefined>(() => Session.restore());
  const [ended, setEnded] = useState(false);
  const route = parseRoute(pathname);

  useEffect(() => {
    session?.onEnded(() => {
      setSession(undefined);
      setEnded(true);
    });
  }, [session]);

  useEffect(() => {
    if (!session && route.page !== 'login') {
      navigate(`${paths.login}?suite=${encodeURIComponent(pathname + location.search)}`, { replace: true });
    }
  }, [session, route.page, pathname]);

  const onLoggedIn = (s: Session) => {
    setSession(s);
    setEnded(false);
    const next = new URLSearchParams(location.search).get('suite');
    navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : paths.home, { replace: true });
  };

  return (
    <div className="app">
      <header className="app-header">
        <a
          className="app-title"
          href={paths.home}
          onClick={(e) => {
            e.preventDefault();
            navigate(paths.home);
          }}
        >
          {t('appTitle')}
        </a>
        <div className="app-header-right">
          <label className="lang">
            <span className="visually-hidden">{t('language')}</span>
            <select value={lang} onChange={(e) => setLang(e.target.value === 'en' ? 'en' : 'fr')} aria-label={t('language')}>
              <option value="fr">Français</option>
              <option value="en">English</option>
            </select>
          </label>
          {session && (
            <>
              <span className="user" data-testid="user-name">
                {session.displayName}
              </span>
              <button
                type="button"
                className="secondary"
                onClick={() => {
                  void session.logout();
                  setSession(undefined);
                }}
              >
                {t('logout')}
              </button>
            </>
          )}
        </div>
      </header>
      <main className="app-main">
        {!session || route.page === 'login' ? (
          <LoginPage onLoggedIn={onLoggedIn} notice={ended ? t('sessionEnded') : undefined} />
        ) : route.page === 'room' ? (
          <Suspense fallback={<p className="muted">{t('loading')}</p>}>
            <RoomPage key={`${route.target.type}/${route.target.id}`} session={session} target={route.target} />
          </Suspense>
        ) : route.page === 'home' ? (
          <HomePage session={session} />
        ) : (
          <p>
            404 —{' '}
            <a href={paths.home} onClick={(e) => (e.preventDefault(), navigate(paths.home))}>
              {t('back')}
            </a>
          </p>
        )}
      </main>
    </div>
  );
}
