/**
 * HTTP side of rooms:
 *   POST /api/rooms/token              a room ticket for one Appointment or ServiceRequest (tickets.ts)
 *   POST /api/teleassistance/calls     a correspondent calls for assistance (emergency: first in the queue)
 *   GET  /api/teleassistance/queue     open calls for the caller's organization, emergencies first
 */
import express from 'express';
import { z } from 'zod';
import type { ServiceRequest } from '@medplum/fhirtypes';
import { ACT_SYSTEM } from '../../fhir/consent.js';
import { FhirError } from '../../fhir/errors.js';
import type { FhirStore } from '../../fhir/store.js';
import { accessOf, principalOf } from '../auth/middleware.js';
import { ApiError, invalidBody } from '../errors.js';
import type { RoomTickets } from './tickets.js';

const ID = /^[A-Za-z0-9\-.]{1,64}$/;

function me(res: express.Response) {
  const principal = principalOf(res);
  if (!principal) throw new ApiError(401, 'unauthorized', 'an access token is required');
  return principal;
}

const callBody = z.object({
  patient: z.string({ required_error: 'patient is required ("Patient/<id>")' }).regex(/^Patient\/[A-Za-z0-9\-.]{1,64}$/, 'patient must be "Patient/<id>"'),
  reason: z.string({ required_error: 'reason is required' }).trim().min(3, 'reason must say what is happening').max(1000),
  emergency: z.boolean().default(false),
  /** Who should assist: an Organization (the SAMU), a Practitioner or a PractitionerRole. */
  performer: z.string().regex(/^(Organization|Practitioner|PractitionerRole)\/[A-Za-z0-9\-.]{1,64}$/, 'performer must be "Organization/<id>", "Practitioner/<id>" or "PractitionerRole/<id>"').optional(),
  /**
   * Chosen by the caller's device, once per call (a UUID): a call resent after a lost answer
   * (satellite) finds the request it already created instead of calling twice.
   */
  requestId: z.string().regex(/^[A-Za-z0-9\-]{8,64}$/, 'requestId must be 8-64 letters, digits or dashes (a UUID)').optional(),
});

export const CALL_SYSTEM = 'urn:hub:teleassistance-call';

/** The order of a regulator's queue: emergencies (stat) first, then asap, urgent, routine; oldest first within each. */
const PRIORITY_RANK: Record<string, number> = { stat: 0, asap: 1, urgent: 2, routine: 3 };

export interface QueueEntry {
  serviceRequest: string;
  patient: string;
  priority: string;
  emergency: boolean;
  authoredOn?: string;
  requester?: string;
  reason?: string;
}

export function sortQueue(entries: QueueEntry[]): QueueEntry[] {
  return [...entries].sort(
    (a, b) => (PRIORITY_RANK[a.priority] ?? 9) - (PRIORITY_RANK[b.priority] ?? 9) || (a.authoredOn ?? '').localeCompare(b.authoredOn ?? '') || a.serviceRequest.localeCompare(b.serviceRequest),
  );
}

function fhirToApi(err: unknown, field: string): unknown {
  if (!(err instanceof FhirError)) return err;
  const issue = err.outcome.issue?.[0];
  const code = err.status === 404 ? 'not-found' : err.status === 422 ? 'unprocessable' : err.status === 403 ? 'forbidden' : 'invalid-request';
  return new ApiError(err.status, code, issue?.diagnostics ?? err.message, field);
}

export interface RoomRoutesOptions {
  store: FhirStore;
  tickets: RoomTickets;
  /** The organization that assists when a call names none (the SAMU of the territory). */
  defaultAssistingOrganization?: string;
  /** Tells the sockets of whoever the call is addressed to (an Organization, Practitioner or PractitionerRole reference) that their queue changed. */
  onCall: (performer: string, entry: QueueEntry) => void;
}

export function roomRoutes(options: RoomRoutesOptions): express.Router {
  const { store, tickets } = options;
  const router = express.Router();

  router.post('/rooms/token', async (req, res, next) => {
    try {
      res.status(201).json(await tickets.issue(me(res), accessOf(res), req.body));
    } catch (err) {
      next(err);
    }
  });

  router.post('/teleassistance/calls', async (req, res, next) => {
    try {
      const parsed = callBody.safeParse(req.body ?? {});
      if (!parsed.success) throw invalidBody(parsed.error);
      const { patient, reason, emergency } = parsed.data;
      const principal = me(res);
      const performer = parsed.data.performer ?? (options.defaultAssistingOrganization ? `Organization/${options.defaultAssistingOrganization}` : undefined);
      if (!performer) throw new ApiError(400, 'invalid-request', 'performer is required: no default assisting organization is configured', 'performer');
      const requester = principal.practitionerRoleId ? `PractitionerRole/${principal.practitionerRoleId}` : principal.practitionerId ? `Practitioner/${principal.practitionerId}` : undefined;
      if (!requester) throw new ApiError(403, 'forbidden', 'only a practitioner can call for teleassistance', 'patient');
      const { requestId } = parsed.data;
      const request: ServiceRequest = {
        resourceType: 'ServiceRequest',
        ...(requestId ? { identifier: [{ system: CALL_SYSTEM, value: requestId }] } : {}),
        status: 'active',
        intent: 'order',
        priority: emergency ? 'stat' : 'urgent',
        category: [{ coding: [{ system: ACT_SYSTEM, code: 'teleassistance', display: 'Téléassistance' }] }],
        code: { text: reason },
        subject: { reference: patient },
        requester: { reference: requester },
        performer: [{ reference: performer }],
        authoredOn: new Date().toISOString(),
      };
      let created: ServiceRequest;
      let isNew: boolean;
      try {
        const result = await store.repo.create(accessOf(res), request, requestId ? `identifier=${CALL_SYSTEM}|${requestId}` : undefined);
        created = result.resource as ServiceRequest;
        isNew = result.created;
      } catch (err) {
        throw fhirToApi(err, 'patient');
      }
      const entry: QueueEntry = {
        serviceRequest: `ServiceRequest/${created.id}`,
        patient,
        priority: created.priority ?? 'routine',
        emergency,
        ...(created.authoredOn ? { authoredOn: created.authoredOn } : {}),
        requester,
        reason,
      };
      if (!isNew) return void res.status(200).json(entry);
      options.onCall(performer, entry);
      res.status(201).json(entry);
    } catch (err) {
      next(err);
    }
  });

  router.get('/teleassistance/queue', async (_req, res, next) => {
    try {
      // The calls addressed to the caller: their organization (the SAMU), their role or themselves.
      const principal = me(res);
      const addressedTo = [
        principal.organizationId && `Organization/${principal.organizationId}`,
        principal.practitionerRoleId && `PractitionerRole/${principal.practitionerRoleId}`,
        principal.practitionerId && `Practitioner/${principal.practitionerId}`,
      ].filter(Boolean);
      if (addressedTo.length === 0) return void res.json({ queue: [] });
      const bundle = await store.repo.search(accessOf(res), 'ServiceRequest', [
        ['category', `${ACT_SYSTEM}|teleassistance`],
        ['status', 'active'],
        ['performer', addressedTo.join(',')],
        ['_count', '1000'],
      ]);
      const entries: QueueEntry[] = (bundle.entry ?? [])
        .map((e) => e.resource as ServiceRequest)
        .filter((r) => r?.resourceType === 'ServiceRequest' && ID.test(r.id ?? ''))
        .map((r) => ({
          serviceRequest: `ServiceRequest/${r.id}`,
          patient: r.subject?.reference ?? '',
          priority: r.priority ?? 'routine',
          emergency: r.priority === 'stat',
          ...(r.authoredOn ? { authoredOn: r.authoredOn } : {}),
          ...(r.requester?.reference ? { requester: r.requester.reference } : {}),
          ...(r.code?.text ? { reason: r.code.text } : {}),
        }));
      res.json({ queue: sortQueue(entries) });
    } catch (err) {
      next(err);
    }
  });

  return router;
}
