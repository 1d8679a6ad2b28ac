import type { Resource } from '@medplum/fhirtypes';
import { FhirError, badRequest } from './errors.js';

export interface JsonPatchOperation {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  value?: unknown;
  from?: string;
}

type Container = Record<string, unknown> | unknown[];

function pointer(path: string, at: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw badRequest(`${at}: "${path}" is not a JSON pointer`, [at]);
  return path
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: unknown, tokens: string[], at: string): [Container, string] {
  let node = doc;
  for (const t of tokens.slice(0, -1)) {
    node = Array.isArray(node) ? node[Number(t)] : (node as Record<string, unknown> | undefined)?.[t];
    if (node === undefined || node === null || typeof node !== 'object') throw unprocessable(`${at}: path does not exist`, at);
  }
  return [node as Container, tokens[tokens.length - 1]!];
}

function unprocessable(msg: string, at: string): FhirError {
  return FhirError.of(422, 'processing', msg, [at]);
}

function get(doc: unknown, tokens: string[], at: string): unknown {
  let node = doc;
  for (const t of tokens) {
    node = Array.isArray(node) ? node[Number(t)] : (node as Record<string, unknown> | undefined)?.[t];
    if (node === undefined) throw unprocessable(`${at}: path does not exist`, at);
  }
  return node;
}

function index(arr: unknown[], key: string, at: string, forAdd: boolean): number {
  if (forAdd && key === '-') return arr.length;
  const i = Number(key);
  if (!/^\d+$/.test(key) || i > arr.length || (!forAdd && i === arr.length)) throw unprocessable(`${at}: index ${key} out of range`, at);
  return i;
}

function remove(doc: unknown, tokens: string[], at: string): unknown {
  const [parent, key] = parentOf(doc, tokens, at);
  if (Array.isArray(parent)) return parent.splice(index(parent, key, at, false), 1)[0];
  if (!(key in parent)) throw unprocessable(`${at}: path does not exist`, at);
  const old = parent[key];
  delete parent[key];
  return old;
}

function add(doc: unknown, tokens: string[], value: unknown, at: string): void {
  const [parent, key] = parentOf(doc, tokens, at);
  if (Array.isArray(parent)) parent.splice(index(parent, key, at, true), 0, value);
  else parent[key] = value;
}

/**
 * RFC 6902 JSON Patch applied to a copy of the resource; the original is left untouched so a
 * failed patch changes nothing. Errors name the operation (e.g. "patch[2]").
 */
export function applyJsonPatch(resource: Resource, ops: JsonPatchOperation[]): Resource {
  const doc = structuredClone(resource) as unknown;
  ops.forEach((op, i) => {
    const at = `patch[${i}]`;
    if (!op || typeof op !== 'object' || typeof op.path !== 'string') throw badRequest(`${at}: each operation needs op and path`, [at]);
    const tokens = pointer(op.path, at);
    if (tokens.length === 0) throw unprocessable(`${at}: the whole resource cannot be replaced by a patch`, at);
    switch (op.op) {
      case 'add':
        if (!('value' in op)) throw badRequest(`${at}: add needs a value`, [at]);
        add(doc, tokens, structuredClone(op.value), at);
        break;
      case 'remove':
        remove(doc, tokens, at);
        break;
      case 'replace':
        if (!('value' in op)) throw badRequest(`${at}: replace needs a value`, [at]);
        remove(doc, tokens, at);
        add(doc, tokens, structuredClone(op.value), at);
        break;
      case 'move': {
        const value = remove(doc, pointer(op.from ?? '', at), at);
        add(doc, tokens, value, at);
        break;
      }
      case 'copy':
        add(doc, tokens, structuredClone(get(doc, pointer(op.from ?? '', at), at)), at);
        break;
      case 'test':
        if (JSON.stringify(get(doc, tokens, at)) !== JSON.stringify(op.value)) throw unprocessable(`${at}: test failed at ${op.path}`, at);
        break;
      default:
        throw badRequest(`${at}: unknown op "${String((op as { op: unknown }).op)}"`, [at]);
    }
  });
  return doc as Resource;
}
