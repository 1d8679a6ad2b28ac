import type { NextFunction, Request, Response } from 'express';
import type { z } from 'zod';

/**
 * The one error type of the hub's JSON APIs (/api): an HTTP status, a stable code a client can
 * branch on, a message a person can act on, and the request field at fault when there is one.
 * Thrown anywhere under server/, written as `{ "error": { code, message, field } }` by apiErrors().
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface ApiErrorBody {
  error: { code: string; message: string; field?: string };
}

export function errorBody(code: string, message: string, field?: string): ApiErrorBody {
  return { error: { code, message, ...(field ? { field } : {}) } };
}

export function sendApiError(res: Response, err: ApiError): void {
  for (const [name, value] of Object.entries(err.headers)) res.setHeader(name, value);
  res.status(err.status).json(errorBody(err.code, err.message, err.field));
}

/** Body-parser failures carry a `type`; turn the two a client can cause into precise answers. */
function fromBodyParser(err: unknown): ApiError | undefined {
  const type = (err as { type?: unknown } | null)?.type;
  if (type === 'entity.parse.failed') return new ApiError(400, 'invalid-json', 'the request body is not valid JSON');
  if (type === 'entity.too.large') return new ApiError(413, 'body-too-large', 'the request body is too large');
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    return new ApiError(415, 'unsupported-encoding', 'the request body encoding is not supported');
  }
  return undefined;
}

/** The last middleware of /api: every error becomes the JSON error shape, in this one place. */
export function apiErrors(onUnexpected: (err: unknown) => void) {
  return (err: unknown, _req: Request, res: Response, _next: NextFunction): void => {
    const known = err instanceof ApiError ? err : fromBodyParser(err);
    if (known) return sendApiError(res, known);
    onUnexpected(err);
    sendApiError(res, new ApiError(500, 'internal-error', 'the hub could not complete the request'));
  };
}

/** The first problem of a zod error, naming the field. */
export function invalidBody(error: z.ZodError): ApiError {
  const issue = error.issues[0]!;
  const field = issue.path.join('.') || undefined;
  return new ApiError(400, 'invalid-request', field ? `${field}: ${issue.message}` : issue.message, field);
}
