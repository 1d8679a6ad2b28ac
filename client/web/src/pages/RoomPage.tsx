import { useEffect, useMemo, useState, useSyncExternalStore } from 'react';
import type { Appointment, ServiceRequest } from '@medplum/fhirtypes';
import { AudioSink, VideoTile } from '../components/MediaTiles.js';
import type { HubWindow } from '../debug-api.js';
import { readPatientName, readResource } from '../fhir.js';
import { t, useLang, type MessageKey } from '../i18n.js';
import { RoomCall, type CallView, type LinkMode, type RemoteMedia, type RoomTarget } from '../rooms/call.js';
import { navigate, paths } from '../router.js';
import type { Session } from '../session.js';
import { EvalisePanel, VitalsPanel } from '../teleassistance/VitalsPanel.js';

/** What the page shows of the consultation itself: the patient, and the subject a snapshot is filed under. */
interface RoomContext {
  patientName?: string;
  subject?: string;
}

export function RoomPage({ session, target }: { session: Session; target: RoomTarget }) {
  useLang();
  const { type, id } = target;
  const call = useMemo(() => new RoomCall(session, { type, id } as RoomTarget, { linkMode: storedLinkMode() }), [session, type, id]);
  const view = useSyncExternalStore(call.subscribe, call.getSnapshot);
  const [context, setContext] = useState<RoomContext>({});

  useEffect(() => {
    const w = window as unknown as HubWindow;
    w.__hub = call.debug();
    void call.start();
    const onUnload = () => void call.leave();
    window.addEventListener('pagehide', onUnload);
    return () => {
      window.removeEventListener('pagehide', onUnload);
      void call.leave();
      if (w.__hub) delete w.__hub;
    };
  }, [call]);

  useEffect(() => {
    let cancelled = false;
    const load = async (): Promise<RoomContext> => {
      if (type === 'appointment') {
        const appointment = await readResource<Appointment>(session, 'Appointment', id);
        const patient = appointment.participant.find((p) => p.actor?.reference?.startsWith('Patient/'))?.actor?.reference;
        const patientName = await readPatientName(session, patient);
        return { ...(patient ? { subject: patient } : {}), ...(patientName ? { patientName } : {}) };
      }
      const request = await readResource<ServiceRequest>(session, 'ServiceRequest', id);
      const subject = request.subject?.reference;
      const patientName = await readPatientName(session, subject);
      return { ...(subject ? { subject } : {}), ...(patientName ? { patientName } : {}) };
    };
    load().then(
      (c) => !cancelled && setContext(c),
      () => undefined, // the room works without it; the ticket request says whether the user may be here
    );
    return () => {
      cancelled = true;
    };
  }, [session, type, id]);

  const title = target.type === 'appointment' ? t('roomConsultation') : t('roomAssistance');
  const leave = async () => {
    await call.leave();
    navigate(paths.home);
  };

  return (
    <div className="room" data-phase={view.phase} data-testid="room">
      <div className="room-head">
        <h1>
          {title}
          {context.patientName && <span className="muted"> — {context.patientName}</span>}
        </h1>
        <ConnectionBanner view={view} />
      </div>
      {view.notice && (
        <p className="notice" role="status">
          {view.notice.message}
        </p>
      )}
      <RoomBody call={call} view={view} session={session} target={target} context={context} onLeave={() => void leave()} />
    </div>
  );
}

function ConnectionBanner({ view }: { view: CallView }) {
  if (view.connection === 'reconnecting')
    return (
      <p className="banner warn" role="status">
        {t('reconnecting')}
      </p>
    );
  if (view.connection === 'unstable')
    return (
      <p className="banner warn" role="status">
        {t('connectionUnstable')}
      </p>
    );
  return null;
}

function BackHome() {
  return (
    <button type="button" className="secondary" onClick={() => navigate(paths.home)}>
      {t('back')}
    </button>
  );
}

interface RoomViewProps {
  call: RoomCall;
  view: CallView;
  session: Session;
  target: RoomTarget;
  context: RoomContext;
  onLeave: () => void;
}

function RoomBody({
  call,
  view,
  session,
  target,
  context,
  onLeave,
}: RoomViewProps) {
  switch (view.phase) {
    case 'idle':
    case 'ticket':
      return <p className="muted">{t('ticket')}</p>;
    case 'connecting':
      return <p className="muted">{t('connecting')}</p>;
    case 'refused':
    case 'error':
      return (
        <div className="card">
          <p role="alert" className="error">
            {view.phase === 'refused' ? t('refused') : t('errorPrefix', { message: '' })} {view.error ? `(${view.error.message})` : ''}
          </p>
          <BackHome />
        </div>
      );
    case 'removed':
    case 'left':
    case 'ended':
      return (
        <div className="card">
          <p role="status">{view.phase === 'removed' ? t('removed') : view.phase === 'ended' ? t('ended') : t('left')}</p>
          {view.encounter && <p data-testid="encounter">{t('encounterSaved', { encounter: view.encounter })}</p>}
          <BackHome />
        </div>
      );
    case 'waiting':
      return (
        <div className="waiting-room">
          <div className="card">
            <h2 role="status" data-testid="waiting-message">
              {t('waiting')}
            </h2>
            <p className="muted">{t('waitingHint')}</p>
            {view.localStream && <VideoTile stream={view.localStream} label={t('you')} mirrored testId="local-video" />}
            {view.kind === 'teleassistance' && <EvalisePanel sent={view.vitalsSent} admitted={false} />}
            <div className="actions">
              <button type="button" className="secondary" onClick={onLeave}>
                {t('leave')}
              </button>
            </div>
          </div>
        </div>
      );
    case 'admitted':
      return <InRoom call={call} view={view} session={session} target={target} context={context} onLeave={onLeave} />;
  }
}

function InRoom({
  call,
  view,
  session,
  target,
  context,
  onLeave,
}: RoomViewProps) {
  const names = new Map(view.peers.map((p) => [p.peerId, p.displayName]));
  const videos = view.remote.filter((r) => r.kind === 'video');
  const audios = view.remote.filter((r) => r.kind === 'audio');
  const host = view.role === 'host';
  const onFirstFrame = useMemo(() => () => call.markRemoteFrame(), [call]);
  return (
    <div className="in-room">
      <div className="stage">
        <div className="tiles" data-testid="remote-tiles">
          {videos.length === 0 && <p className="muted">{t('noRemote')}</p>}
          {videos.map((r) => (
            <VideoTile
              key={r.consumerId}
              track={r.track}
              label={`${names.get(r.peerId) ?? t('guest')}${r.source === 'screen' ? ` — ${t('screen')}` : ''}`}
              note={remoteNote(r, audios)}
              onFirstFrame={onFirstFrame}
              testId={`remote-${r.source}`}
            />
          ))}
          {view.localStream && <VideoTile stream={view.localStream} label={t('you')} mirrored note={view.cameraOn ? undefined : t('videoPaused')} testId="local-video" />}
          {view.screenStream && <VideoTile stream={view.screenStream} label={`${t('you')} — ${t('screen')}`} testId="local-screen" />}
        </div>
        {audios.map((r) => (
          <AudioSink key={r.consumerId} track={r.track} />
        ))}
        <Controls call={call} view={view} onLeave={onLeave} />
        {view.kind === 'teleassistance' && host && (
          <VitalsPanel call={call} session={session} vitals={view.vitals} subject={context.subject} serviceRequest={`ServiceRequest/${target.id}`} />
        )}
        {view.kind === 'teleassistance' && !host && <EvalisePanel sent={view.vitalsSent} admitted />}
      </div>
      {host && (
        <aside className="side">
          <WaitingList call={call} view={view} />
          <EndPanel call={call} kind={view.kind ?? 'teleconsultation'} />
        </aside>
      )}
    </div>
  );
}

/** A site on a satellite link chooses it once: the choice is kept on this browser. */
const LINK_MODE_KEY = 'hub.linkMode';

function storedLinkMode(): LinkMode {
  try {
    const stored = localStorage.getItem(LINK_MODE_KEY);
    return stored === 'normal' || stored === 'satellite' ? stored : 'auto';
  } catch {
    return 'auto';
  }
}

function storeLinkMode(mode: LinkMode): void {
  try {
    localStorage.setItem(LINK_MODE_KEY, mode);
  } catch {
    // private mode: the choice lasts for this call
  }
}

function remoteNote(video: RemoteMedia, audios: RemoteMedia[]): string | undefined {
  const notes: string[] = [];
  if (video.paused) notes.push(t('videoPaused'));
  if (video.source === 'webcam' && audios.some((a) => a.peerId === video.peerId && a.paused)) notes.push(t('micMuted'));
  return notes.length > 0 ? notes.join(' · ') : undefined;
}

function Controls({ call, view, onLeave }: { call: RoomCall; view: CallView; onLeave: () => void }) {
  return (
    <div className="controls" role="toolbar" aria-label="Contrôles">
      <button type="button" className={view.micOn ? 'secondary' : 'danger'} aria-pressed={!view.micOn} onClick={() => void call.setMicOn(!view.micOn)}>
        {view.micOn ? t('muteMic') : t('unmuteMic')}
      </button>
      <button type="button" className={view.cameraOn ? 'secondary' : 'danger'} aria-pressed={!view.cameraOn} onClick={() => void call.setCameraOn(!view.cameraOn)}>
        {view.cameraOn ? t('cameraOff') : t('cameraOn')}
      </button>
      <button type="button" className="secondary" onClick={() => void (view.sharing ? call.stopScreenShare() : call.startScreenShare())}>
        {view.sharing ? t('stopSharing') : t('shareScreen')}
      </button>
      <label className="link-mode">
        {t('link')}
        <select
          value={view.linkMode}
          onChange={(e) => {
            const mode = e.target.value as LinkMode;
            storeLinkMode(mode);
            void call.setLinkMode(mode);
          }}
          aria-label={t('link')}
          data-testid="link-mode"
        >
          {(['auto', 'normal', 'satellite'] as const).map((mode) => (
            <option key={mode} value={mode}>
              {t(`link_${mode}` as MessageKey)}
              {mode === 'auto' ? ` (${t(`link_${view.linkProfile}` as MessageKey)})` : ''}
            </option>
          ))}
        </select>
      </label>
      {view.rttMs !== undefined && (
        <span className="muted small" data-testid="link-measure">
          {t('linkMeasure', { rtt: view.rttMs, loss: ((view.loss ?? 0) * 100).toFixed(1) })}
        </span>
      )}
      <button type="button" className="secondary" onClick={onLeave}>
        {t('leave')}
      </button>
    </div>
  );
}

function WaitingList({ call, view }: { call: RoomCall; view: CallView }) {
  return (
    <section className="card" aria-labelledby="waiting-title" data-testid="waiting-list">
      <h2 id="waiting-title">{t('waitingList')}</h2>
      {view.waiting.length === 0 ? (
        <p className="muted">{t('nobodyWaiting')}</p>
      ) : (
        <ul className="list">
          {view.waiting.map((p) => (
            <li key={p.peerId} data-testid={`waiting-${p.peerId}`}>
              <span>{p.displayName}</span>
              <span className="actions">
                <button type="button" onClick={() => void call.admit(p.peerId)}>
                  {t('admit')}
                </button>
                <button type="button" className="secondary" onClick={() => void call.remove(p.peerId)}>
                  {t('remove')}
                </button>
              </span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function EndPanel({ call, kind }: { call: RoomCall; kind: string }) {
  const [report, setReport] = useState('');
  const [busy, setBusy] = useState(false);
  return (
    <section className="card" aria-labelledby="report-title">
      <h2 id="report-title">{t('report')}</h2>
      <textarea
        aria-labelledby="report-title"
        rows={8}
        value={report}
        placeholder={t('reportPlaceholder')}
        onChange={(e) => setReport(e.target.value)}
      />
      <button
        type="button"
        className="danger"
        disabled={busy || report.trim() === ''}
        onClick={() => {
          setBusy(true);
          void call.end(report).finally(() => setBusy(false));
        }}
      >
        {kind === 'teleassistance' ? t('endAssistance') : t('endConsultation')}
      </button>
    </section>
  );
}
