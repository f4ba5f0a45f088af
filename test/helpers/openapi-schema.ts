import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { Harness } from './harness';

/**
 * A validator for one named schema of the OpenAPI document as GET /docs/openapi.json serves it
 * (JSON Schema 2020-12, checked with ajv as openapi.contract.test.ts checks responses): returns
 * ajv's errors for a value, an empty list when it is valid.
 */
export async function servedSchema(h: Harness, name: string): Promise<(value: unknown) => unknown[]> {
  const res = await fetch(`${h.baseUrl}/docs/openapi.json`);
  if (res.status !== 200) throw new Error(`openapi.json: ${res.status}`);
  // The OpenAPI keywords around the schemas are not JSON Schema: strict mode would refuse them.
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
  addFormats(ajv);
  ajv.addSchema(await res.json(), 'openapi.json');
  const validate = ajv.compile({ $ref: `openapi.json#/components/schemas/${name}` });
  return (value) => (validate(value) ? [] : [...(validate.errors ?? [])]);
}
