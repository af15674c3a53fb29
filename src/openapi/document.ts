import * as z from 'zod'
import { version } from '../../package.json'
import { ERRORS, type ErrorType } from '../errors'
import { SDK_AUTH_ERRORS } from '../middleware/sdk'
import { fieldErrorType, JSON_BODY_ERRORS } from '../middleware/validate'
import type { RouteDoc } from '../routes/group'
import { Attributes, ErrorResponse, Session, User } from '../schemas'

/**
 * The OpenAPI 3.1 document, generated from the routes as declared (./routes.ts lists them) and the
 * zod schemas the validators use: request schemas as zod's input type (what a client may send:
 * nulls, omitted defaults), responses as the output type. Error replies are derived per route from
 * its authentication, its validated fields (through the same mapping the validator uses) and the
 * error types its handler can raise. Built once per isolate on first request.
 */

type Json = Record<string, unknown>

const ERROR_SCHEMA_REF = '#/components/schemas/ErrorResponse'
const ref = (id: string) => `#/components/schemas/${id}`

let cached: Json | undefined

/** The document served at GET /openapi.json, for the app's routes (the same list on every call). */
export function openApiDocument(routes: readonly RouteDoc[]): Json {
  cached ??= build(routes)
  return cached
}

function build(routes: readonly RouteDoc[]): Json {
  const requests = z.registry<{ id: string }>()
  const responses = z.registry<{ id: string }>()
  requests.add(Attributes, { id: 'Attributes' })
  responses.add(User, { id: 'User' })
  responses.add(Session, { id: 'Session' })
  responses.add(ErrorResponse, { id: 'ErrorResponse' })
  // A schema serving two routes keeps the first name it was given.
  const idFor = (registry: typeof requests, schema: z.ZodType, id: string) => {
    const existing = registry.get(schema)?.id
    if (existing) return existing
    registry.add(schema, { id })
    return id
  }
  const bodies = new Map<RouteDoc, string>()
  const results = new Map<RouteDoc, string>()
  for (const route of routes) {
    const base = route.operationId.charAt(0).toUpperCase() + route.operationId.slice(1)
    if (route.body) bodies.set(route, idFor(requests, route.body, `${base}Request`))
    if (route.response instanceof z.ZodType) results.set(route, idFor(responses, route.response, `${base}Response`))
  }
  const schemas: Json = {}
  for (const [io, registry] of [
    ['input', requests],
    ['output', responses],
  ] as const) {
    const override = io === 'input' ? optionalIfAbsentOk : undefined
    const generated = z.toJSONSchema(registry, { io, uri: ref, override })
    for (const [id, schema] of Object.entries(generated.schemas)) {
      if (id in schemas) throw new Error(`OpenAPI component ${id} is defined twice`)
      const { $schema: _dialect, $id: _id, ...rest } = schema
      schemas[id] = rest
    }
  }

  const paths: Record<string, Json> = {}
  for (const route of routes) {
    const path = route.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
    const item = paths[path] ?? {}
    item[route.method] = operation(route, bodies.get(route), results.get(route), schemas)
    paths[path] = item
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'whatsapp-otp',
      version,
      summary: "Stytch-compatible WhatsApp one-time-passcode login (a subset of Stytch's consumer API)",
      description:
        'Point the official Stytch SDKs at this service. Every JSON reply carries request_id (also in the ' +
        "X-Request-Id header) and status_code; every error has Stytch's shape (ErrorResponse). Any route also " +
        'answers 404 route_not_found for an unknown path and 405 method_not_allowed (with Allow) for a known ' +
        'path and another method.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/', description: 'The service that serves this document' }],
    security: [{ projectSecret: [] }],
    tags: ['OTP', 'Users', 'Sessions', 'Frontend SDK', 'Phone frame', 'Webhooks', 'Service', 'Development'].map(
      (name) => ({ name }),
    ),
    paths,
    components: {
      securitySchemes: {
        projectSecret: {
          type: 'http',
          scheme: 'basic',
          description: 'HTTP Basic with the project id as user name and the project secret as password.',
        },
        publicToken: {
          type: 'http',
          scheme: 'basic',
          description:
            "The frontend SDKs' credentials: HTTP Basic with the project's public token as user name and, as " +
            'password, the logged-in user’s session token, or the public token again. Accepted only from a page ' +
            'on an origin the project authorizes (sdk_authorized_origins); replies carry CORS headers for it.',
        },
      },
      schemas,
    },
  }
}

function operation(route: RouteDoc, bodyId: string | undefined, responseId: string | undefined, schemas: Json): Json {
  const op: Json = { operationId: route.operationId, summary: route.summary, tags: [route.tag] }
  if (route.description) op.description = route.description
  if (route.auth === 'none') op.security = []
  if (route.auth === 'public_token') op.security = [{ publicToken: [] }]
  const parameters = [...parametersOf(route.params, 'path'), ...parametersOf(route.query, 'query')]
  if (parameters.length > 0) op.parameters = parameters
  if (bodyId) {
    const media = route.bodyMedia ?? 'application/json'
    op.requestBody = { required: true, content: { [media]: { schema: { $ref: ref(bodyId) } } } }
  }

  const ok: Json = {
    description: 'Success',
    headers: { 'X-Request-Id': { description: 'The request id', schema: { type: 'string' } } },
  }
  if (responseId) ok.content = { 'application/json': { schema: { $ref: ref(responseId) } } }
  else
    ok.content = { [mediaTypeOf(route.response)]: { schema: { type: 'string', description: textOf(route.response) } } }
  const responses: Json = { '200': ok }
  for (const [status, types] of errorsByStatus(route, bodyId, schemas)) {
    responses[String(status)] = {
      description: types.join(', '),
      content: {
        'application/json': {
          schema: {
            allOf: [{ $ref: ERROR_SCHEMA_REF }],
            properties: { status_code: { const: status }, error_type: { enum: types } },
          },
        },
      },
    }
  }
  op.responses = responses
  return op
}

function textOf(response: RouteDoc['response']): string {
  return response instanceof z.ZodType ? '' : response.text
}

function mediaTypeOf(response: RouteDoc['response']): string {
  return response instanceof z.ZodType ? 'application/json' : (response.mediaType ?? 'text/plain')
}

function parametersOf(schema: z.ZodObject | undefined, location: 'path' | 'query'): Json[] {
  if (!schema) return []
  return Object.entries(schema.shape).map(([name, field]) => {
    const { $schema: _dialect, description, ...json } = z.toJSONSchema(field, { io: 'input' })
    const param: Json = { name, in: location, required: location === 'path' || !acceptsAbsent(field), schema: json }
    if (description) param.description = description
    return param
  })
}

/** The error types of a route, grouped by HTTP status (ascending), each list sorted. */
function errorsByStatus(route: RouteDoc, bodyId: string | undefined, schemas: Json): [number, ErrorType[]][] {
  const types = new Set<ErrorType>(['internal_server_error', ...route.errors])
  if (route.auth === 'project') {
    types.add('unauthorized_credentials')
    // A project moving between shards is answered 503 for a few seconds (src/shards/pause.ts).
    types.add('service_unavailable')
  }
  if (route.auth === 'public_token') {
    for (const type of SDK_AUTH_ERRORS) types.add(type)
  }
  if (route.validated !== false) {
    if (route.body) for (const type of JSON_BODY_ERRORS) types.add(type)
    const fields = [
      ...Object.keys(route.params?.shape ?? {}),
      ...Object.keys(route.query?.shape ?? {}),
      ...(bodyId ? fieldPaths(schemas[bodyId], schemas) : []),
    ]
    if (fields.length > 0) types.add('bad_request')
    // The validator's own mapping decides each field's error type, not a copy.
    for (const field of fields) types.add(fieldErrorType(field))
  }
  const byStatus = new Map<number, ErrorType[]>()
  for (const type of [...types].sort()) {
    const status = ERRORS[type][0]
    byStatus.set(status, [...(byStatus.get(status) ?? []), type])
  }
  return [...byStatus.entries()].sort(([a], [b]) => a - b)
}

/** Dotted paths of every property in a JSON Schema (through $ref and anyOf), e.g. attributes.ip_address. */
function fieldPaths(schema: unknown, schemas: Json, prefix = '', seen = new Set<unknown>()): string[] {
  if (typeof schema !== 'object' || schema === null || seen.has(schema)) return []
  seen.add(schema)
  const node = schema as Json
  if (typeof node.$ref === 'string') {
    return fieldPaths(schemas[node.$ref.replace('#/components/schemas/', '')], schemas, prefix, seen)
  }
  const paths: string[] = []
  if (Array.isArray(node.anyOf)) {
    for (const option of node.anyOf) paths.push(...fieldPaths(option, schemas, prefix, seen))
  }
  if (typeof node.properties === 'object' && node.properties !== null) {
    for (const [key, child] of Object.entries(node.properties)) {
      paths.push(`${prefix}${key}`, ...fieldPaths(child, schemas, `${prefix}${key}.`, seen))
    }
  }
  return [...new Set(paths)]
}

/** Whether a field may be left out: asked of the schema itself, so refinements and pipes count. */
function acceptsAbsent(schema: z.core.$ZodType): boolean {
  return z.safeParse(schema, undefined).success
}

/**
 * zod lists a property as required unless it is optional by type; a field whose schema accepts
 * undefined by other means (e.g. `z.unknown().refine(...)`) may be omitted all the same.
 */
function optionalIfAbsentOk(ctx: { zodSchema: z.core.$ZodTypes; jsonSchema: z.core.JSONSchema.BaseSchema }) {
  const { zodSchema, jsonSchema } = ctx
  if (!(zodSchema instanceof z.ZodObject) || !Array.isArray(jsonSchema.required)) return
  const shape = zodSchema.shape
  jsonSchema.required = jsonSchema.required.filter((key) => {
    const field = shape[key]
    return !field || !acceptsAbsent(field)
  })
  if (jsonSchema.required.length === 0) delete jsonSchema.required
}
