import type { CapabilityStatement, CapabilityStatementRestResource } from '@medplum/fhirtypes';
import { SUPPORTED_TYPES, searchParamsOf } from './definitions.js';

const SEARCH_TYPE: Record<string, 'token' | 'string' | 'date' | 'reference' | 'number' | 'quantity' | 'uri'> = {
  token: 'token',
  string: 'string',
  date: 'date',
  reference: 'reference',
  number: 'number',
  quantity: 'quantity',
  uri: 'uri',
};

/** What this server supports, derived from the same tables the store uses: nothing more, nothing less. */
export function capabilityStatement(baseUrl: string): CapabilityStatement {
  const resources: CapabilityStatementRestResource[] = SUPPORTED_TYPES.map((type) => ({
    type,
    versioning: 'versioned-update',
    readHistory: true,
    updateCreate: true,
    conditionalCreate: true,
    conditionalUpdate: true,
    conditionalDelete: 'not-supported',
    conditionalRead: 'not-supported',
    referencePolicy: ['literal'],
    searchInclude: [...searchParamsOf(type).values()].filter((p) => p.kind === 'reference').map((p) => `${type}:${p.code}`),
    interaction: (['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type'] as const).map((code) => ({ code })),
    searchParam: [
      { name: '_id', type: 'token' },
      { name: '_lastUpdated', type: 'date' },
      ...[...searchParamsOf(type).values()].map((p) => ({ name: p.code, definition: p.url, type: SEARCH_TYPE[p.kind]! })),
    ],
    ...(type === 'Observation'
      ? { operation: [{ name: 'lastn', definition: 'http://hl7.org/fhir/OperationDefinition/Observation-lastn' }] }
      : {}),
  }));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    patchFormat: ['application/json-patch+json'],
    software: { name: 'Telemedicine coordination hub', version: '0.1.0' },
    implementation: { description: 'FHIR R4 store of the telemedicine hub', url: baseUrl },
    rest: [
      {
        mode: 'server',
        documentation:
          'Search: token, string, date, reference, number, quantity and uri parameters; prefixes eq ne gt lt ge le sa eb; ' +
          'modifiers :exact :contains (string), :not (token), :missing (all), :below (uri), :[Type] (reference); one level of chaining; ' +
          '_id _lastUpdated _count _sort _include _revinclude (one level) _total _summary=count. Paging by next links (keyset cursors). ' +
          'Request bodies may be gzip-compressed.',
        resource: resources,
        interaction: [{ code: 'transaction' }, { code: 'batch' }],
      },
    ],
  };
}
