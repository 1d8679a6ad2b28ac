/**
 * Room tokens: who may enter which room. A professional asks for a ticket to the room of one
 * Appointment (teleconsultation) or one ServiceRequest (teleassistance); the hub reads it with the
 * caller's rights (care-based access: a consultation of another team is "not found"), checks that
 * the caller takes part in it, that it is open now and that the patient consented, and signs a
 * short-lived JWT bound to the caller's account and that room. The socket `join` verifies it.
 */
import type { Appointment, Reference, ServiceRequest } from '@medplum/fhirtypes';
import type { UserContext } from '../../fhir/access.js';
import { ACT_SYSTEM, checkConsent } from '../../fhir/consent.js';
import { FhirError } from '../../fhir/errors.js';
import type { FhirStore } from '../../fhir/store.js';
import { InvalidTokenError, type KeyRing, type TokenKind } from '../auth/keys.js';
import type { Principal } from '../auth/principal.js';
import { ApiError } from '../errors.js';
import type { RoomKind, RoomRole, RoomTicket } from './protocol.js';

export const ROOM_TOKEN: TokenKind = { typ: 'room+jwt', audience: 'hub-rooms' };

const PARTICIPATION = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType';
/** Open for entry: booked, the patient arrived or checked in. */
const OPEN_APPOINTMENT = new Set(['booked', 'arrived', 'checked-in']);

export interface RoomClaims {
  accountId: string;
  roomId: string;
  kind: RoomKind;
  role: RoomRole;
  /** "Appointment/<id>" or "ServiceRequest/<id>" */
  basedOn: string;
  patientId: string;
  /** The host's Practitioner, for the Encounter and the report. */
  practitionerId?: string;
}

export interface TicketSettings {
  /** Lifetime of a room token: long enough to connect, short enough to be useless if leaked. */
  ttlSeconds: number;
  /** A room opens this long before the appointment's start... */
  earlyMinutes: number;
  /** ...and can be entered until this long after its end (consultations run late). */
  lateMinutes: number;
}

export const DEFAULT_TICKET_SETTINGS: TicketSettings = { ttlSeconds: 120, earlyMinutes: 15, lateMinutes: 60 };

/** The references that stand for this professional in a participant list. */
function referencesOf(principal: Principal): Set<string> {
  const refs = new Set<string>();
  if (principal.practitionerId) refs.add(`Practitioner/${principal.practitionerId}`);
  if (principal.practitionerRoleId) refs.add(`PractitionerRole/${principal.practitionerRoleId}`);
  if (principal.organizationId) refs.add(`Organization/${principal.organizationId}`);
  return refs;
}

const refOf = (r: Reference | undefined) => r?.reference ?? '';

function parseTarget(body: unknown): { type: 'Appointment' | 'ServiceRequest'; id: string; field: string } {
  const input = (body ?? {}) as { appointment?: unknown; serviceRequest?: unknown };
  const field = input.appointment !== undefined ? 'appointment' : input.serviceRequest !== undefined ? 'serviceRequest' : undefined;
  if (!field) throw new ApiError(400, 'invalid-request', 'appointment ("Appointment/<id>") or serviceRequest ("ServiceRequest/<id>") is required', 'appointment');
  if (input.appointment !== undefined && input.serviceRequest !== undefined) {
    throw new ApiError(400, 'invalid-request', 'give appointment or serviceRequest, not both', 'serviceRequest');
  }
  const value = input[field as 'appointment' | 'serviceRequest'];
  const type = field === 'appointment' ? 'Appointment' : 'ServiceRequest';
  const match = typeof value === 'string' ? new RegExp(`^(?:${type}/)?([A-Za-z0-9\\-.]{1,64})$`).exec(value) : null;
  if (!match) throw new ApiError(400, 'invalid-request', `${field} must be "${type}/<id>"`, field);
  return { type, id: match[1]!, field };
}

export class RoomTickets {
  constructor(
    private readonly store: FhirStore,
    private readonly keyRing: KeyRing,
    private readonly settings: TicketSettings = DEFAULT_TICKET_SETTINGS,
  ) {}

  /** POST /api/rooms/token: the ticket, or an ApiError naming the field and the reason. */
  async issue(principal: Principal, access: UserContext, body: unknown, now = new Date()): Promise<RoomTicket> {
    const target = parseTarget(body);
    let resource: Appointment | ServiceRequest;
    try {
      resource = (await this.store.repo.read(access, target.type, target.id)) as Appointment | ServiceRequest;
    } catch (err) {
      if (err instanceof FhirError && (err.status === 404 || err.status === 410)) {
        throw new ApiError(404, 'not-found', `no ${target.type}/${target.id} that you take part in`, target.field);
      }
      throw err;
    }
    const claims = resource.resourceType === 'Appointment' ? this.forAppointment(principal, resource, target.field, now) : this.forAssistance(principal, resource, target.field);
    // Consent is checked before any media flows (and again here, not only when the act was booked: it may have been withdrawn).
    try {
      await checkConsent(this.store.db, [resource], now.toISOString());
    } catch (err) {
      if (err instanceof FhirError) throw new ApiError(422, 'consent-required', err.message, target.field);
      throw err;
    }
    const roomToken = await this.keyRing.sign(
      { room: claims.roomId, kind: claims.kind, role: claims.role, basedOn: claims.basedOn, patient: claims.patientId, ...(claims.practitionerId ? { practitioner: claims.practitionerId } : {}) },
      { subject: principal.accountId, expiresInSeconds: this.settings.ttlSeconds, kind: ROOM_TOKEN },
    );
    return { roomToken, roomId: claims.roomId, role: claims.role, kind: claims.kind, expiresIn: this.settings.ttlSeconds };
  }

  /** Verifies a room token for the account that presents it: a token is useless to anyone else. */
  async verify(token: unknown, principal: Principal): Promise<RoomClaims> {
    if (typeof token !== 'string' || token.length === 0) throw new ApiError(400, 'invalid-argument', 'roomToken is required', 'roomToken');
    let payload;
    try {
      payload = await this.keyRing.verify(token, ROOM_TOKEN);
    } catch (err) {
      if (err instanceof InvalidTokenError) throw new ApiError(401, 'unauthorized', `room token refused: ${err.message.replace('access token', 'room token')}`, 'roomToken');
      throw err;
    }
    if (payload.sub !== principal.accountId) {
      throw new ApiError(403, 'forbidden', 'this room token was issued to another user', 'roomToken');
    }
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const roomId = str(payload.room);
    const kind = str(payload.kind) as RoomKind | undefined;
    const role = str(payload.role) as RoomRole | undefined;
    const basedOn = str(payload.basedOn);
    const patientId = str(payload.patient);
    if (!roomId || !kind || !role || !basedOn || !patientId) throw new ApiError(401, 'unauthorized', 'room token refused: claims missing', 'roomToken');
    const practitionerId = str(payload.practitioner);
    return { accountId: principal.accountId, roomId, kind, role, basedOn, patientId, ...(practitionerId ? { practitionerId } : {}) };
  }

  private forAppointment(principal: Principal, appointment: Appointment, field: string, now: Date): RoomClaims {
    const isConsultation = appointment.serviceType?.some((c) => c.coding?.some((x) => x.system === ACT_SYSTEM && x.code === 'teleconsultation'));
    if (!isConsultation) throw new ApiError(409, 'not-a-teleconsultation', `Appointment/${appointment.id} is not a teleconsultation (serviceType ${ACT_SYSTEM}|teleconsultation)`, field);
    if (!OPEN_APPOINTMENT.has(appointment.status)) {
      throw new ApiError(409, 'not-open', `Appointment/${appointment.id} is ${appointment.status}: only booked, arrived or checked-in consultations open a room`, field);
    }
    if (appointment.start) {
      const start = Date.parse(appointment.start);
      const end = appointment.end ? Date.parse(appointment.end) : start + 30 * 60_000;
      if (now.getTime() < start - this.settings.earlyMinutes * 60_000) {
        throw new ApiError(409, 'too-early', `the consultation room opens ${this.settings.earlyMinutes} minutes before ${appointment.start}`, field);
      }
      if (now.getTime() > end + this.settings.lateMinutes * 60_000) {
        throw new ApiError(409, 'ended', `the consultation was due to end at ${new Date(end).toISOString()}; book a new appointment`, field);
      }
    }
    const mine = referencesOf(principal);
    const participants = (appointment.participant ?? []).filter((p) => p.status !== 'declined');
    const patientId = participants.map((p) => refOf(p.actor)).find((r) => r.startsWith('Patient/'))?.slice('Patient/'.length);
    if (!patientId) throw new ApiError(409, 'no-patient', `Appointment/${appointment.id} names no Patient participant`, field);
    const asParticipant = participants.filter((p) => mine.has(refOf(p.actor)));
    if (asParticipant.length === 0) {
      throw new ApiError(403, 'not-a-participant', `you are not a participant of Appointment/${appointment.id}`, field);
    }
    // The doctor who leads the consultation is the primary performer; everyone else waits to be admitted.
    const host = asParticipant.some((p) => p.type?.some((t) => t.coding?.some((c) => c.system === PARTICIPATION && c.code === 'PPRF')));
    return {
      accountId: principal.accountId,
      roomId: `appointment:${appointment.id}`,
      kind: 'teleconsultation',
      role: host ? 'host' : 'guest',
      basedOn: `Appointment/${appointment.id}`,
      patientId,
      ...(host && principal.practitionerId ? { practitionerId: principal.practitionerId } : {}),
    };
  }

  private forAssistance(principal: Principal, request: ServiceRequest, field: string): RoomClaims {
    const isAssistance = [...(request.category ?? []), ...(request.code ? [request.code] : [])].some((c) => c.coding?.some((x) => x.system === ACT_SYSTEM && x.code === 'teleassistance'));
    if (!isAssistance) throw new ApiError(409, 'not-a-teleassistance', `ServiceRequest/${request.id} is not a teleassistance request (category ${ACT_SYSTEM}|teleassistance)`, field);
    if (request.status !== 'active') throw new ApiError(409, 'not-open', `ServiceRequest/${request.id} is ${request.status}: only an active request opens a room`, field);
    const patientId = refOf(request.subject).startsWith('Patient/') ? refOf(request.subject).slice('Patient/'.length) : undefined;
    if (!patientId) throw new ApiError(409, 'no-patient', `ServiceRequest/${request.id} has no Patient subject`, field);
    const mine = referencesOf(principal);
    const requester = mine.has(refOf(request.requester));
    // The remote doctor: a performer named in person, or a regulator of the performing organization
    // (SAMU). Being on the staff of that organization is not enough: the correspondent is too.
    const performers = (request.performer ?? []).map(refOf);
    const named = performers.some((r) => (r.startsWith('Practitioner/') || r.startsWith('PractitionerRole/')) && mine.has(r));
    const regulating = principal.role === 'regulator' && !!principal.organizationId && performers.includes(`Organization/${principal.organizationId}`);
    const performer = named || regulating;
    if (!requester && !performer) throw new ApiError(403, 'not-a-participant', `you are neither the requester nor a performer of ServiceRequest/${request.id}`, field);
    return {
      accountId: principal.accountId,
      roomId: `teleassistance:${request.id}`,
      kind: 'teleassistance',
      role: performer ? 'host' : 'guest',
      basedOn: `ServiceRequest/${request.id}`,
      patientId,
      ...(performer && principal.practitionerId ? { practitionerId: principal.practitionerId } : {}),
    };
  }
}
