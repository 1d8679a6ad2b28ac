import { useCallback, useEffect, useState, type ReactNode } from 'react';
import { listAssistanceRequests, listConsultations } from '../fhir.js';
import { formatDateTime, t, useLang, type MessageKey } from '../i18n.js';
import { navigate, paths } from '../router.js';
import type { Session } from '../session.js';

type Loaded<T> = { status: 'loading' } | { status: 'ok'; items: T[] } | { status: 'error'; message: string };

function useList<T>(load: () => Promise<T[]>): [Loaded<T>, () => void] {
  const [state, setState] = useState<Loaded<T>>({ status: 'loading' });
  const reload = useCallback(() => {
    setState({ status: 'loading' });
    load().then(
      (items) => setState({ status: 'ok', items }),
      (err: unknown) => setState({ status: 'error', message: err instanceof Error ? err.message : String(err) }),
    );
  }, [load]);
  useEffect(reload, [reload]);
  return [state, reload];
}

export function HomePage({ session }: { session: Session }) {
  useLang();
  const [consultations, reloadConsultations] = useList(useCallback(() => listConsultations(session), [session]));
  const [assistance, reloadAssistance] = useList(useCallback(() => listAssistanceRequests(session), [session]));

  // A correspondent's call for assistance reaches the assisting organization's screens at once.
  useEffect(() => {
    let socket: { disconnect(): void } | undefined;
    let cancelled = false;
    void import('socket.io-client').then(({ io }) => {
      if (cancelled) return;
      const s = io('/', {
        auth: (cb: (data: object) => void) => void session.accessToken().then((token) => cb({ token }), () => cb({})),
        transports: ['websocket', 'polling'],
        tryAllTransports: true,
      });
      s.on('teleassistanceCall' as never, () => reloadAssistance());
      socket = s;
    });
    return () => {
      cancelled = true;
      socket?.disconnect();
    };
  }, [session, reloadAssistance]);

  return (
    <div className="home">
      <section className="card" aria-labelledby="consultations-title">
        <h2 id="consultations-title">{t('consultationsTitle')}</h2>
        <ListState state={consultations} empty={t('noConsultations')} reload={reloadConsultations}>
          {(items) => (
            <ul className="list">
              {items.map(({ appointment, patientName }) => (
                <li key={appointment.id} data-testid={`consultation-${appointment.id}`}>
                  <div>
                    <strong>{patientName ?? t('patient')}</strong>
                    <span className="muted"> · {formatDateTime(appointment.start)}</span>
                    {appointment.description && <div className="muted">{appointment.description}</div>}
                    <div className="muted small">{statusLabel(appointment.status)}</div>
                  </div>
                  <button type="button" onClick={() => navigate(paths.room({ type: 'appointment', id: appointment.id! }))}>
                    {t('join')}
                  </button>
                </li>
              ))}
            </ul>
          )}
        </ListState>
      </section>
      <section className="card" aria-labelledby="assistance-title">
        <h2 id="assistance-title">{t('assistanceTitle')}</h2>
        <ListState state={assistance} empty={t('noAssistance')} reload={reloadAssistance}>
          {(items) => (
            <ul className="list">
              {items.map(({ request, patientName }) => (
                <li key={request.id} data-testid={`assistance-${request.id}`} className={request.priority === 'stat' ? 'emergency' : undefined}>
                  <div>
                    {request.priority === 'stat' && <span className="badge">{t('emergency')}</span>}
                    <strong>{patientName ?? t('patient')}</strong>
                    <span className="muted"> · {formatDateTime(request.authoredOn)}</span>
                    {request.code?.text && <div className="muted">{request.code.text}</div>}
                    <div className="muted small">{priorityLabel(request.priority)}</div>
                  </div>
                  <button type="button" onClick={() => navigate(paths.room({ type: 'serviceRequest', id: request.id! }))}>
                    {t('join')}
                  </button>
                </li>
              ))}
            </ul>
          )}
        </ListState>
      </section>
    </div>
  );
}

function ListState<T>({ state, empty, reload, children }: { state: Loaded<T>; empty: string; reload: () => void; children: (items: T[]) => ReactNode }) {
  if (state.status === 'loading') return <p className="muted">{t('loading')}</p>;
  if (state.status === 'error')
    return (
      <p role="alert" className="error">
        {t('errorPrefix', { message: state.message })}{' '}
        <button type="button" className="secondary" onClick={reload}>
          {t('retry')}
        </button>
      </p>
    );
  if (state.items.length === 0) return <p className="muted">{empty}</p>;
  return <>{children(state.items)}</>;
}

function statusLabel(status: string): string {
  const key = `status_${status}` as MessageKey;
  return ['status_booked', 'status_arrived', 'status_active'].includes(key) ? t(key) : status;
}

function priorityLabel(priority: string | undefined): string {
  return t(`priority_${priority ?? 'routine'}` as MessageKey);
}
