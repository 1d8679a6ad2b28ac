import { useState } from 'react';
import { postTransaction } from '../fhir.js';
import { t } from '../i18n.js';
import type { RoomCall } from '../rooms/call.js';
import type { Session } from '../session.js';
import { EcgStrip } from './EcgStrip.js';
import { snapshotBundle } from './snapshot.js';
import type { VitalsSummary } from './vitals.js';

/**
 * The remote doctor's view of a teleassistance: the correspondent's e-valise readings as they
 * stream in, and "save a snapshot" (the readings and the last 10 s of ECG as Observations in the
 * patient's record).
 */
export function VitalsPanel({
  call,
  session,
  vitals,
  subject,
  serviceRequest,
}: {
  call: RoomCall;
  session: Session;
  vitals: VitalsSummary | undefined;
  subject: string | undefined;
  serviceRequest: string;
}) {
  const monitor = call.vitalsMonitor;
  const [saving, setSaving] = useState(false);
  const [saved, setSaved] = useState<string | undefined>();
  const [error, setError] = useState<string | undefined>();
  if (!monitor) return null;

  const save = async () => {
    setSaving(true);
    setError(undefined);
    setSaved(undefined);
    try {
      const ecg = monitor.recentEcg(10);
      const summary = monitor.summary;
      const bundle = snapshotBundle({
        snapshotId: crypto.randomUUID(),
        subject: subject ?? '',
        basedOn: serviceRequest,
        ...(session.claims.practitionerId ? { performer: `Practitioner/${session.claims.practitionerId}` } : {}),
        effective: new Date(ecg?.endMs ?? Date.now()).toISOString(),
        ...(summary.spo2 !== undefined ? { spo2: summary.spo2 } : {}),
        ...(summary.heartRate !== undefined ? { heartRate: summary.heartRate } : {}),
        ...(ecg ? { ecg: { lead: ecg.lead, rateHz: ecg.rateHz, samples: ecg.samples } } : {}),
      });
      const references = await postTransaction(session, bundle);
      call.noteSnapshot(references);
      setSaved(t('snapshotSaved', { count: references.length }));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setSaving(false);
    }
  };

  return (
    <section className="card vitals" aria-labelledby="vitals-title" data-testid="vitals-panel">
      <h2 id="vitals-title">{t('vitalsTitle')}</h2>
      {!vitals || vitals.received === 0 ? (
        <p className="muted">{t('vitalsNone')}</p>
      ) : (
        <>
          <div className="readings">
            <div className="reading">
              <span className="reading-label">{t('spo2')}</span>
              <span className="reading-value" data-testid="spo2">
                {vitals.spo2 ?? '—'}
              </span>
              <span className="reading-unit">%</span>
            </div>
            <div className="reading">
              <span className="reading-label">{t('heartRate')}</span>
              <span className="reading-value" data-testid="heart-rate">
                {vitals.heartRate ?? '—'}
              </span>
              <span className="reading-unit">/min</span>
            </div>
            <div className="reading small muted">
              <span>{t('vitalsDelay', { delay: Math.round(vitals.lastDelayMs ?? 0) })}</span>
              {vitals.missing > 0 && <span className="error"> · {t('vitalsMissing', { missing: vitals.missing })}</span>}
            </div>
          </div>
          <EcgStrip monitor={monitor} label={t('ecgLead', { lead: vitals.ecgLead ?? 'II' })} />
          <div className="muted small">{t('ecgLead', { lead: vitals.ecgLead ?? 'II' })}</div>
        </>
      )}
      <div className="actions">
        <button type="button" onClick={() => void save()} disabled={saving || !vitals || vitals.received === 0 || !subject}>
          {saving ? t('snapshotSaving') : t('snapshot')}
        </button>
        {saved && (
          <span role="status" className="ok">
            {saved}
          </span>
        )}
        {error && (
          <span role="alert" className="error">
            {error}
          </span>
        )}
      </div>
    </section>
  );
}

export function EvalisePanel({ sent, admitted }: { sent: number; admitted: boolean }) {
  return (
    <section className="card evalise" aria-labelledby="evalise-title" data-testid="evalise-panel">
      <h2 id="evalise-title">{t('evaliseTitle')}</h2>
      <p>{admitted ? t('evaliseSending', { count: sent }) : t('evaliseWaiting')}</p>
    </section>
  );
}
