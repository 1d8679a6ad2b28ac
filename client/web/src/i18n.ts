/**
 * Every string the app shows, French first, English second. `t('key', { name })` fills `{name}`.
 * The language is the user's choice (kept in localStorage), French unless they chose English.
 */
import { useSyncExternalStore } from 'react';

const fr = {
  appTitle: 'Hub de télémédecine',
  logout: 'Se déconnecter',
  language: 'Langue',
  loading: 'Chargement…',
  retry: 'Réessayer',
  back: 'Retour à l’accueil',
  errorPrefix: 'Erreur : {message}',

  loginTitle: 'Connexion des professionnels',
  username: 'Identifiant',
  password: 'Mot de passe',
  signIn: 'Se connecter',
  signingIn: 'Connexion…',
  sessionEnded: 'Votre session a expiré : reconnectez-vous.',

  consultationsTitle: 'Téléconsultations',
  noConsultations: 'Aucune téléconsultation prévue.',
  assistanceTitle: 'Téléassistance',
  noAssistance: 'Aucune demande de téléassistance ouverte.',
  join: 'Rejoindre',
  emergency: 'Urgence',
  priority_stat: 'Urgence vitale',
  priority_asap: 'Dès que possible',
  priority_urgent: 'Urgent',
  priority_routine: 'Programmé',
  patient: 'Patient',
  participants: 'Participants',
  when: 'Horaire',
  requestedBy: 'Demandé par',
  status_booked: 'Planifiée',
  status_arrived: 'Patient arrivé',
  status_active: 'En cours',

  roomConsultation: 'Téléconsultation',
  roomAssistance: 'Téléassistance',
  ticket: 'Ouverture de la salle…',
  connecting: 'Connexion à la salle…',
  waiting: 'Salle d’attente — le médecin va vous admettre',
  waitingHint: 'Vérifiez votre caméra et votre micro en attendant.',
  waitingList: 'Salle d’attente',
  nobodyWaiting: 'Personne n’attend.',
  admit: 'Admettre',
  remove: 'Retirer',
  removed: 'Le médecin vous a retiré de la salle.',
  refused: 'Accès à la salle refusé',
  ended: 'Consultation terminée.',
  left: 'Vous avez quitté la salle.',
  encounterSaved: 'Consultation enregistrée dans le dossier du patient ({encounter}).',
  you: 'Vous',
  host: 'Médecin',
  guest: 'Participant',
  noRemote: 'En attente des autres participants…',
  camera: 'Caméra',
  screen: 'Écran partagé',
  muteMic: 'Couper le micro',
  unmuteMic: 'Activer le micro',
  cameraOff: 'Couper la caméra',
  cameraOn: 'Activer la caméra',
  shareScreen: 'Partager l’écran',
  stopSharing: 'Arrêter le partage',
  leave: 'Quitter',
  micMuted: 'Micro coupé',
  videoPaused: 'Caméra coupée',
  link: 'Liaison',
  link_auto: 'Automatique',
  link_normal: 'Normale',
  link_satellite: 'Satellite (audio prioritaire)',
  linkMeasure: 'RTT {rtt} ms · pertes {loss} %',
  connectionUnstable: 'Connexion instable… nouvelle tentative en cours',
  reconnecting: 'Reconnexion à la salle…',
  report: 'Compte rendu',
  reportPlaceholder: 'Motif, examen, conclusion, conduite à tenir…',
  endConsultation: 'Terminer la consultation',
  endAssistance: 'Terminer la téléassistance',

  vitalsTitle: 'Constantes en direct (e-valise)',
  spo2: 'SpO₂',
  heartRate: 'Fréquence cardiaque',
  ecgLead: 'ECG — dérivation {lead}',
  vitalsDelay: 'Délai {delay} ms',
  vitalsMissing: '{missing} message(s) perdu(s)',
  vitalsNone: 'En attente des constantes…',
  snapshot: 'Enregistrer un instantané',
  snapshotSaving: 'Enregistrement…',
  snapshotSaved: 'Instantané enregistré : {count} observations.',
  evaliseTitle: 'E-valise',
  evaliseSending: 'Constantes transmises en direct : {count} messages.',
  evaliseWaiting: 'La transmission commence dès que le médecin vous a admis.',
} as const;

export type MessageKey = keyof typeof fr;

const en: Record<MessageKey, string> = {
  appTitle: 'Telemedicine hub',
  logout: 'Log out',
  language: 'Language',
  loading: 'Loading…',
  retry: 'Try again',
  back: 'Back to home',
  errorPrefix: 'Error: {message}',

  loginTitle: 'Professional login',
  username: 'Username',
  password: 'Password',
  signIn: 'Log in',
  signingIn: 'Logging in…',
  sessionEnded: 'Your session has expired: log in again.',

  consultationsTitle: 'Teleconsultations',
  noConsultations: 'No teleconsultation scheduled.',
  assistanceTitle: 'Teleassistance',
  noAssistance: 'No open teleassistance request.',
  join: 'Join',
  emergency: 'Emergency',
  priority_stat: 'Life-threatening emergency',
  priority_asap: 'As soon as possible',
  priority_urgent: 'Urgent',
  priority_routine: 'Scheduled',
  patient: 'Patient',
  participants: 'Participants',
  when: 'Time',
  requestedBy: 'Requested by',
  status_booked: 'Booked',
  status_arrived: 'Patient arrived',
  status_active: 'Active',

  roomConsultation: 'Teleconsultation',
  roomAssistance: 'Teleassistance',
  ticket: 'Opening the room…',
  connecting: 'Connecting to the room…',
  waiting: 'Waiting room — the doctor will admit you',
  waitingHint: 'Check your camera and microphone while you wait.',
  waitingList: 'Waiting room',
  nobodyWaiting: 'Nobody is waiting.',
  admit: 'Admit',
  remove: 'Remove',
  removed: 'The doctor removed you from the room.',
  refused: 'Access to the room refused',
  ended: 'Consultation ended.',
  left: 'You left the room.',
  encounterSaved: 'Consultation saved in the patient record ({encounter}).',
  you: 'You',
  host: 'Doctor',
  guest: 'Participant',
  noRemote: 'Waiting for the other participants…',
  camera: 'Camera',
  screen: 'Shared screen',
  muteMic: 'Mute microphone',
  unmuteMic: 'Unmute microphone',
  cameraOff: 'Turn camera off',
  cameraOn: 'Turn camera on',
  shareScreen: 'Share screen',
  stopSharing: 'Stop sharing',
  leave: 'Leave',
  micMuted: 'Microphone muted',
  videoPaused: 'Camera off',
  link: 'Link',
  link_auto: 'Automatic',
  link_normal: 'Normal',
  link_satellite: 'Satellite (audio first)',
  linkMeasure: 'RTT {rtt} ms · loss {loss} %',
  connectionUnstable: 'Unstable connection… retrying',
  reconnecting: 'Reconnecting to the room…',
  report: 'Report',
  reportPlaceholder: 'Reason, examination, conclusion, plan…',
  endConsultation: 'End the consultation',
  endAssistance: 'End the teleassistance',

  vitalsTitle: 'Live vital signs (e-valise)',
  spo2: 'SpO₂',
  heartRate: 'Heart rate',
  ecgLead: 'ECG — lead {lead}',
  vitalsDelay: 'Delay {delay} ms',
  vitalsMissing: '{missing} message(s) lost',
  vitalsNone: 'Waiting for vital signs…',
  snapshot: 'Save a snapshot',
  snapshotSaving: 'Saving…',
  snapshotSaved: 'Snapshot saved: {count} observations.',
  evaliseTitle: 'E-valise',
  evaliseSending: 'Vital signs streamed live: {count} messages.',
  evaliseWaiting: 'Streaming starts once the doctor has admitted you.',
};

export type Lang = 'fr' | 'en';
const MESSAGES: Record<Lang, Record<MessageKey, string>> = { fr, en };
const STORAGE_KEY = 'hub.lang';

let current: Lang = readStoredLang();
const listeners = new Set<() => void>();

function readStoredLang(): Lang {
  try {
    return localStorage.getItem(STORAGE_KEY) === 'en' ? 'en' : 'fr';
  } catch {
    return 'fr';
  }
}

export function setLang(lang: Lang): void {
  current = lang;
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // private mode: the choice lasts for this page
  }
  document.documentElement.lang = lang;
  for (const listener of listeners) listener();
}

export function getLang(): Lang {
  return current;
}

export function t(key: MessageKey, params: Record<string, string | number> = {}): string {
  const template = MESSAGES[current][key] ?? fr[key];
  return template.replace(/\{(\w+)\}/g, (_, name: string) => (name in params ? String(params[name]) : `{${name}}`));
}

/** Re-renders the component when the language changes; returns it. */
export function useLang(): Lang {
  return useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    () => current,
  );
}

export function formatDateTime(iso: string | undefined): string {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return new Intl.DateTimeFormat(current === 'fr' ? 'fr-FR' : 'en-GB', { dateStyle: 'medium', timeStyle: 'short' }).format(date);
}
