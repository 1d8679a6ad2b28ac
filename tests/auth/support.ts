import type { AuditSink, LoginFailed, LoginSucceeded } from '../../server/auth/audit-sink.js';
import type { TestHub } from '../fhir/harness.js';

/** Remembers every login event, so tests can check what authentication reported. */
export class MemoryAuditSink implements AuditSink {
  readonly succeeded: LoginSucceeded[] = [];
  readonly failed: LoginFailed[] = [];
  async loginSucceeded(e: LoginSucceeded): Promise<void> {
    this.succeeded.push(e);
  }
  async loginFailed(e: LoginFailed): Promise<void> {
    this.failed.push(e);
  }
}

export interface HttpResult<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

export interface Tokens {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
}

/** One HTTP request to the hub; the body is parsed as JSON when there is one. */
export async function call<T = unknown>(
  hub: TestHub,
  method: string,
  path: string,
  options: { json?: unknown; token?: string; headers?: Record<string, string>; rawBody?: string } = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined = options.rawBody;
  if (options.json !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = JSON.stringify(options.json);
  }
  const response = await fetch(`${hub.rootUrl}${path}`, { method, headers, body });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, headers: response.headers, body: parsed as T };
}

export const login = (hub: TestHub, username: string, password: string) =>
  call<Tokens & ErrorBody>(hub, 'POST', '/api/auth/login', { json: { username, password } });

export const refresh = (hub: TestHub, refreshToken: string) =>
  call<Tokens & ErrorBody>(hub, 'POST', '/api/auth/refresh', { json: { refreshToken } });

export const logout = (hub: TestHub, refreshToken: string) => call<ErrorBody>(hub, 'POST', '/api/auth/logout', { json: { refreshToken } });

export function base64url(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

export function decodePart(token: string, index: 0 | 1): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[index]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}
