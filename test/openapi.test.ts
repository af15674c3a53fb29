import { beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { app } from '../src/app'
import { ERRORS, type ErrorType } from '../src/errors'
import { ROUTES } from '../src/openapi/routes'
import { call } from './helpers'
import { asJson, fetchDocument, type Json, openApiPath, operation, schemaErrors } from './openapi-helpers'

// The document covers exactly what the app serves: every route, every request field, every
// response, every error; and it is well-formed. Real replies are checked in openapi-replies.test.ts.

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const
const served = () => [
  ...new Set(app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method.toLowerCase()} ${r.path}`)),
]

/** Concrete values for path parameters, so routes can be called. */
const EXAMPLE_PARAMS: Record<string, string> = {
  user_id: `user-test-${crypto.randomUUID()}`,
  phone_id: `phone-number-test-${crypto.randomUUID()}`,
  project_id: `project-test-${crypto.randomUUID()}`,
}

let doc: Json
beforeAll(async () => {
  doc = await fetchDocument()
})

describe('GET /openapi.json', () => {
  it('is an OpenAPI 3.1 document, served without credentials and not cached', async () => {
    const res = await call('GET', '/openapi.json', { project: null })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^application\/json/)
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(doc).toMatchObject({ openapi: '3.1.0', info: { title: expect.any(String), version: expect.any(String) } })
    expect(asJson(asJson(doc.components).securitySchemes).projectSecret).toEqual(
      expect.objectContaining({ type: 'http', scheme: 'basic' }),
    )
  })

  it('documents every route the app serves, and no other', () => {
    const documented = Object.entries(asJson(doc.paths)).flatMap(([path, item]) =>
      METHODS.filter((m) => m in asJson(item)).map((m) => `${m} ${path}`),
    )
    expect(
      served()
        .map((r) => r.replace(/ (.*)$/, (_, p: string) => ` ${openApiPath(p)}`))
        .sort(),
    ).toEqual(documented.sort())
    expect(ROUTES.map((r) => `${r.method} ${r.path}`).sort()).toEqual(served().sort())
  })

  it('lists every request field: body properties, path and query parameters', () => {
    for (const route of ROUTES) {
      const op = operation(doc, route.method, route.path)
      const params = ((op.parameters ?? []) as Json[]).map((p) => `${p.in}:${p.name}`)
      const expected = [
        ...Object.keys(route.params?.shape ?? {}).map((k) => `path:${k}`),
        ...Object.keys(route.query?.shape ?? {}).map((k) => `query:${k}`),
      ]
      expect(params.sort(), route.operationId).toEqual(expected.sort())
      expect(params.filter((p) => p.startsWith('path:')).sort()).toEqual(
        [...route.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => `path:${m[1]}`).sort(),
      )
      if (route.body instanceof z.ZodObject) {
        const media = route.bodyMedia ?? 'application/json'
        const ref = String(asJson(asJson(asJson(asJson(op.requestBody).content)[media]).schema).$ref)
        const component = asJson(asJson(asJson(doc.components).schemas)[ref.split('/').pop() ?? ''])
        expect(Object.keys(asJson(component.properties)).sort(), route.operationId).toEqual(
          Object.keys(route.body.shape).sort(),
        )
      }
    }
  })

  it('gives every operation a success reply, a 500, and the auth error where credentials are needed', () => {
    for (const route of ROUTES) {
      const op = operation(doc, route.method, route.path)
      const responses = asJson(op.responses)
      expect(Object.keys(responses), route.operationId).toEqual(expect.arrayContaining(['200', '500']))
      const unauthorized = asJson(responses['401'] ?? {})
      expect(JSON.stringify(unauthorized).includes('unauthorized_credentials'), route.operationId).toBe(
        route.auth !== 'none',
      )
      const security = { none: [], project: undefined, public_token: [{ publicToken: [] }] }[route.auth]
      expect(op.security, route.operationId).toEqual(security)
    }
  })

  it('lists only known error types, each under its own status, in the Stytch error shape', () => {
    for (const route of ROUTES) {
      const responses = asJson(operation(doc, route.method, route.path).responses)
      for (const [status, response] of Object.entries(responses)) {
        if (status === '200') continue
        const schema = asJson(asJson(asJson(asJson(response).content)['application/json']).schema)
        expect(schema.allOf).toEqual([{ $ref: '#/components/schemas/ErrorResponse' }])
        const { status_code, error_type } = asJson(schema.properties) as {
          status_code: { const: number }
          error_type: { enum: ErrorType[] }
        }
        expect(status_code.const).toBe(Number(status))
        for (const type of error_type.enum)
          expect(ERRORS[type]?.[0], `${route.operationId} ${type}`).toBe(Number(status))
        for (const type of route.errors) {
          if (ERRORS[type][0] === Number(status)) expect(error_type.enum).toContain(type)
        }
      }
    }
  })

  it('resolves every reference, and every schema compiles and accepts what it should', () => {
    const text = JSON.stringify(doc)
    const schemas = asJson(asJson(doc.components).schemas)
    for (const match of text.matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)) {
      expect(schemas, `dangling $ref ${match[1]}`).toHaveProperty([match[1] ?? ''])
    }
    const error = {
      status_code: 404,
      request_id: 'r',
      error_type: 'user_not_found',
      error_message: 'm',
      error_url: 'u',
    }
    expect(schemaErrors(doc, { $ref: '#/components/schemas/ErrorResponse' }, error)).toEqual([])
    expect(schemaErrors(doc, { $ref: '#/components/schemas/ErrorResponse' }, { ...error, error: 'x' })).not.toEqual([])
    for (const name of Object.keys(schemas)) {
      expect(() => schemaErrors(doc, { $ref: `#/components/schemas/${name}` }, {}), name).not.toThrow()
    }
  })

  it("matches the app's authentication: routes with credentials refuse calls without them, others don't", async () => {
    for (const route of ROUTES) {
      const path = route.path.replace(/:([A-Za-z0-9_]+)/g, (_, name: string) => EXAMPLE_PARAMS[name] ?? 'x')
      const init = route.body ? { body: {} } : {}
      const res = await call(route.method.toUpperCase(), path, { ...init, project: null })
      const text = await res.text()
      const refused = res.status === 401 && text.includes('"error_type":"unauthorized_credentials"')
      expect(refused, `${route.operationId}: ${res.status} ${text.slice(0, 200)}`).toBe(route.auth !== 'none')
    }
  })
})
