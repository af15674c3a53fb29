import { Validator } from '@cfworker/json-schema'
import { expect } from 'vitest'
import { callJson } from './helpers'

/**
 * Reading the served OpenAPI document in tests and checking values against its schemas with
 * @cfworker/json-schema (a JSON Schema 2020-12 validator that runs in workerd: no eval, no
 * code generation, which workerd forbids and Ajv needs).
 */

export type Json = Record<string, unknown>

const BASE = 'https://whatsapp-otp.invalid/openapi.json'

/** GET /openapi.json without credentials. */
export async function fetchDocument(): Promise<Json> {
  const res = await callJson('GET', '/openapi.json', { project: null })
  expect(res.status).toBe(200)
  return res.body
}

export const asJson = (value: unknown): Json => {
  expect(value, 'expected a JSON object').toBeTypeOf('object')
  return value as Json
}

/** `/v1/users/:user_id` → `/v1/users/{user_id}`. */
export const openApiPath = (honoPath: string) => honoPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}')

/** The operation object for a method and Hono path; fails the test if it is missing. */
export function operation(doc: Json, method: string, honoPath: string): Json {
  const item = asJson(asJson(doc.paths)[openApiPath(honoPath)] ?? {})
  const op = item[method.toLowerCase()]
  expect(op, `${method} ${honoPath} is not in the document`).toBeDefined()
  return asJson(op)
}

/** Errors of `value` against `schema`, whose `#/components/...` references resolve in `doc`. */
export function schemaErrors(doc: Json, schema: unknown, value: unknown): string[] {
  // A fresh copy per validator: the library annotates the schema objects it dereferences.
  const root = { $id: BASE, components: structuredClone(doc.components), ...asJson(structuredClone(schema)) }
  const result = new Validator(root, '2020-12', false).validate(value)
  return result.errors.map((e) => `${e.instanceLocation}: ${e.error}`)
}

/**
 * Asserts that a real reply is documented: its status is listed for the operation, and its body
 * (JSON or text, by the documented media type) validates against the schema given there.
 */
export function expectDocumentedReply(
  doc: Json,
  method: string,
  honoPath: string,
  reply: { status: number; headers: Headers; body: unknown },
) {
  const responses = asJson(operation(doc, method, honoPath).responses)
  const documented = responses[String(reply.status)]
  expect(
    documented,
    `${method} ${honoPath} does not document status ${reply.status}: ${JSON.stringify(reply.body)}`,
  ).toBeDefined()
  const content = asJson(asJson(documented).content)
  const type = reply.headers.get('content-type')?.split(';')[0] ?? ''
  const media = content[type]
  expect(media, `${method} ${honoPath} ${reply.status} is not documented as ${type}`).toBeDefined()
  const errors = schemaErrors(doc, asJson(media).schema, reply.body)
  expect(errors, `${method} ${honoPath} ${reply.status}: ${JSON.stringify(reply.body)}`).toEqual([])
}

/** Asserts that a request body the service accepted is valid under the documented request schema. */
export function expectDocumentedRequest(doc: Json, method: string, honoPath: string, body: unknown) {
  const requestBody = asJson(operation(doc, method, honoPath).requestBody)
  const schema = asJson(asJson(asJson(requestBody.content)['application/json']).schema)
  expect(schemaErrors(doc, schema, body), `${method} ${honoPath} request ${JSON.stringify(body)}`).toEqual([])
}
