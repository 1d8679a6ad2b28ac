import { SfuError } from './errors.js';

// Checks at the door of every public method: arguments come from clients through signaling, so
// each is checked before anything changes, and a refusal names the argument at fault.

const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

function invalid(field: string, expectation: string): SfuError {
  return new SfuError('invalid-argument', `${field} must be ${expectation}`, field);
}

export function requireRecord(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(field, 'an object');
  return value as Record<string, unknown>;
}

export function optionalRecord(value: unknown, field: string): Record<string, unknown> | undefined {
  return value === undefined ? undefined : requireRecord(value, field);
}

/** An identifier: a non-empty string of at most 256 characters, without control characters. */
export function requireId(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256 || CONTROL_CHARACTERS.test(value)) {
    throw invalid(field, 'a non-empty string of at most 256 characters');
  }
  return value;
}

/** Text shown to people: trimmed, non-empty, at most `maxLength` characters. */
export function requireText(value: unknown, field: string, maxLength: number): string {
  const text = typeof value === 'string' ? value.trim() : '';
  if (text.length === 0 || text.length > maxLength || CONTROL_CHARACTERS.test(text)) {
    throw invalid(field, `a non-empty text of at most ${maxLength} characters`);
  }
  return text;
}

/** A short label that may be empty (DataChannel label and protocol). */
export function optionalLabel(value: unknown, field: string, maxLength: number): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length > maxLength || CONTROL_CHARACTERS.test(value)) {
    throw invalid(field, `a string of at most ${maxLength} characters`);
  }
  return value;
}

export function requireOneOf<T extends string>(value: unknown, allowed: readonly T[], field: string): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw invalid(field, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`);
  }
  return value as T;
}

export function optionalBoolean(value: unknown, field: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw invalid(field, 'true or false');
  return value;
}

export function requireInteger(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(field, `an integer from ${min} to ${max}`);
  }
  return value;
}

export function optionalInteger(value: unknown, field: string, min: number, max: number): number | undefined {
  return value === undefined ? undefined : requireInteger(value, field, min, max);
}

/**
 * A structured-cloneable copy of a parameters object. mediasoup writes into the objects it is
 * given (it fills in encodings and the RTCP CNAME), so it always gets a copy of the caller's.
 */
export function copyParameters<T>(value: unknown, field: string, requiredArrays: readonly string[] = []): T {
  const record = requireRecord(value, field);
  for (const key of requiredArrays) {
    if (!Array.isArray(record[key])) throw invalid(`${field}.${key}`, 'an array');
  }
  try {
    return structuredClone(record) as T;
  } catch {
    throw invalid(field, 'plain data (no functions or class instances)');
  }
}
