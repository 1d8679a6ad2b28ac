import express from 'express';
import { z } from 'zod';
import { FhirError } from '../fhir/errors.js';
import type { FhirRepository } from '../fhir/repository.js';
import { accessOf } from './auth/middleware.js';
import { ApiError, invalidBody } from './errors.js';

const MAX_MINUTES = 12 * 60;

const request = z.object({
  patientId: z.string().regex(/^[A-Za-z0-9\-.]{1,64}$/, 'a FHIR Patient id'),
  reason: z.string().trim().min(10, 'state why emergency access is needed (at least 10 characters)').max(500),
  minutes: z.number().int().min(5).max(MAX_MINUTES).default(240),
});

/**
 * POST /api/emergency-access — a regulator's "break-the-glass" access to one patient's record,
 * time-limited (default 4 h, at most 12 h), audited, and flagged on the patient for the care team.
 */
export function emergencyRoutes(repo: FhirRepository): express.Router {
  const router = express.Router();
  router.post('/', async (req, res, next) => {
    try {
      const parsed = request.safeParse(req.body ?? {});
      if (!parsed.success) throw invalidBody(parsed.error);
      const { patientId, reason, minutes } = parsed.data;
      const grant = await repo.breakTheGlass(accessOf(res), patientId, reason, minutes);
      res.status(201).json(grant);
    } catch (err) {
      if (err instanceof FhirError) {
        next(new ApiError(err.status, err.status === 403 ? 'forbidden' : 'not-found', err.message, err.status === 404 ? 'patientId' : undefined));
      } else next(err);
    }
  });
  return router;
}
