import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

export type IssueCode = OperationOutcomeIssue['code'];

/**
 * The one error type of the FHIR store: an HTTP status and an OperationOutcome a client can act on.
 * Thrown anywhere in fhir/, turned into a response in exactly one place (rest.ts).
 */
export class FhirError extends Error {
  constructor(
    readonly status: number,
    readonly outcome: OperationOutcome,
  ) {
    super(outcome.issue?.map((i) => i.diagnostics ?? i.details?.text ?? i.code).join('; ') ?? 'FHIR error');
  }

  static of(status: number, code: IssueCode, diagnostics: string, expression?: string[]): FhirError {
    return new FhirError(status, outcome([{ severity: 'error', code, diagnostics, ...(expression ? { expression } : {}) }]));
  }
}

export function outcome(issue: OperationOutcomeIssue[]): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue };
}

export function informational(diagnostics: string): OperationOutcome {
  return outcome([{ severity: 'information', code: 'informational', diagnostics }]);
}

export const badRequest = (msg: string, expression?: string[]) => FhirError.of(400, 'invalid', msg, expression);
export const notFound = (msg: string) => FhirError.of(404, 'not-found', msg);
export const gone = (msg: string) => FhirError.of(410, 'deleted', msg);
export const conflict = (msg: string) => FhirError.of(409, 'conflict', msg);
export const preconditionFailed = (msg: string) => FhirError.of(412, 'conflict', msg);
export const notSupported = (msg: string) => FhirError.of(400, 'not-supported', msg);
export const unprocessable = (msg: string, expression?: string[]) => FhirError.of(422, 'processing', msg, expression);
