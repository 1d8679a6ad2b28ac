import { io, type Socket } from 'socket.io-client';
import type { Appointment, Patient } from '@medplum/fhirtypes';
import type { Ack, RoomTicket } from '../../server/rooms/protocol.js';
import type { TestHub } from '../fhir/harness.js';
import { DEMO_IDS } from '../../fhir/demo/demo-data.js';
import { ORG, PRACT, USER, act, api, consent, create, newPatient, ref } from '../access/support.js';

export { USER, ORG, PRACT };

/** A signaling client as the browser app uses it: socket.io on /rooms with the access token. */
export class RoomClient {
  readonly events: { event: string; payload: unknown }[] = [];

  private constructor(readonly socket: Socket) {
    socket.onAny((event: string, payload: unknown) => this.events.push({ event, payload }));
  }

  static async connect(hub: TestHub, accessToken: string): Promise<RoomClient> {
    const socket = io(`${hub.rootUrl}/rooms`, { auth: { token: accessToken }, transports: ['websocket'], reconnection: false, forceNew: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', (err) => reject(err));
    });
    return new RoomClient(socket);
  }

  /** Sends a request and returns its acknowledgement, as is. */
  async request<T = unknown>(name: string, payload: unknown = {}): Promise<Ack<T>> {
    return (await this.socket.timeout(10_000).emitWithAck(name, payload)) as Ack<T>;
  }

  /** A request that must succeed: its data. */
  async ok<T = unknown>(name: string, payload: unknown = {}): Promise<T> {
    const ack = await this.request<T>(name, payload);
    if (!ack.ok) throw new Error(`${name} failed: ${JSON.stringify(ack.error)}`);
    return ack.data;
  }

  /** Waits for a server event (one already received counts) and returns its payload. */
  async next<T = unknown>(event: string, match: (payload: T) => boolean = () => true, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find((e) => e.event === event && match(e.payload as T));
      if (found) {
        this.events.splice(this.events.indexOf(found), 1);
        return found.payload as T;
      }
      if (Date.now() > deadline) throw new Error(`no ${event} event within ${timeoutMs} ms; got ${this.events.map((e) => e.event).join(', ') || 'nothing'}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.socket.disconnect();
  }
}

export async function ticket(hub: TestHub, token: string, body: unknown): Promise<{ status: number; body: RoomTicket & { error?: { code: string; field?: string; message: string } } }> {
  return api(hub, 'POST', '/api/rooms/token', token, body);
}

/**
 * A teleconsultation as a nursing home books it: a resident of the EHPAD with consent to
 * teleconsultation, and an Appointment starting now with the geriatrician of the CHU leading it
 * (PPRF) and the EHPAD's nurse beside the resident.
 */
export async function bookConsultation(hub: TestHub, options: { start?: Date; withConsent?: boolean } = {}): Promise<{ patient: Patient; appointment: Appointment }> {
  const nurse = await hub.clientAs(USER.ehpadNurse);
  const patient = await create(nurse, newPatient(ORG.ehpad, 'Résidente'));
  await create(nurse, consent(patient.id!, 'teleconsultation', { organizationId: ORG.ehpad }));
  const start = options.start ?? new Date();
  const appointment = await create(nurse, {
    resourceType: 'Appointment',
    status: 'booked',
    serviceType: [act('teleconsultation')],
    description: 'Téléconsultation gériatrique : chutes à répétition',
    start: start.toISOString(),
    end: new Date(start.getTime() + 30 * 60_000).toISOString(),
    participant: [
      { actor: ref('Patient', patient.id!), status: 'accepted' },
      {
        actor: ref('Practitioner', PRACT.geriatrician),
        status: 'accepted',
        type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PPRF' }] }],
      },
      {
        actor: ref('PractitionerRole', DEMO_IDS.practitionerRoles.ehpadNurse),
        status: 'accepted',
        type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PART' }] }],
      },
      { actor: ref('Organization', ORG.ehpad), status: 'accepted' },
    ],
  } as Appointment);
  return { patient, appointment };
}
