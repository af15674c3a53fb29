import { type Context, type Handler, Hono, type MiddlewareHandler } from 'hono'
import type * as z from 'zod'
import type { AppEnv } from '../env'
import type { ErrorType } from '../errors'
import { jsonBody, validate } from '../middleware/validate'

/**
 * A route is declared once, as a spec: the group registers it with Hono (its method, its path, the
 * validators built from its schemas) and records the same spec for the OpenAPI document
 * (src/openapi/document.ts). The route and its documentation therefore cannot disagree on method,
 * path or request schema; test/openapi*.test.ts check the rest against real replies.
 */

export type Tag = 'OTP' | 'Users' | 'Sessions' | 'Frontend SDK' | 'Phone frame' | 'Webhooks' | 'Service' | 'Development'

export interface RouteSpec {
  method: 'get' | 'post' | 'put' | 'delete'
  /** The path inside its group, as Hono registers it (`/:user_id`). */
  path: string
  operationId: string
  summary: string
  description?: string
  tag: Tag
  /**
   * `project`: HTTP Basic project_id:secret (401 unauthorized_credentials otherwise). `public_token`:
   * HTTP Basic public_token:(session_token or public_token) from a page on an origin the project
   * authorizes (src/middleware/sdk.ts). Both are checked by src/app.ts for whole path prefixes (an
   * unknown path under them is refused before it is a 404).
   */
  auth: 'project' | 'public_token' | 'none'
  params?: z.ZodObject
  query?: z.ZodObject
  /** A JSON body read by jsonBody() (415/413/400 before validation). */
  body?: z.ZodType
  /** The body's media type when it is not JSON (a provider's form post, read by the handler itself). */
  bodyMedia?: 'application/x-www-form-urlencoded'
  /**
   * False when the handler reads its input itself: the schemas above then only describe it, no
   * validator is installed and no validation errors are derived from them.
   */
  validated?: false
  /** A JSON schema, or a text reply described in words (text/plain unless `mediaType` says otherwise). */
  response: z.ZodType | { text: string; mediaType?: 'text/html' }
  /** What the handler itself can answer besides validation, auth and 500. */
  errors: readonly ErrorType[]
  /** Middleware of the route's own, run before validation and the handler. */
  use?: readonly MiddlewareHandler<AppEnv>[]
}

/** A route as the OpenAPI document sees it: its spec, with the full path Hono serves it at. */
export type RouteDoc = Omit<RouteSpec, 'use'> & {
  /** The path as the app registers it (`/v1/users/:user_id`). */
  path: string
}

type Validated<S extends RouteSpec> = S extends { validated: false }
  ? object
  : (S extends { params: infer P extends z.ZodType } ? { param: z.output<P> } : object) &
      (S extends { query: infer Q extends z.ZodType } ? { query: z.output<Q> } : object) &
      (S extends { body: infer B extends z.ZodType } ? { json: z.output<B> } : object)

/** A handler whose `c.req.valid(...)` is typed by the spec's schemas, and `c.req.param(...)` by its path. */
export type RouteHandler<S extends RouteSpec> = (
  c: Context<AppEnv, S['path'], { out: Validated<S> }>,
) => Response | Promise<Response>

export class RouteGroup {
  /** The Hono app to mount at `base`. */
  readonly app = new Hono<AppEnv>()
  /** The group's routes in registration order, with full paths. */
  readonly docs: RouteDoc[] = []

  constructor(readonly base: string) {}

  /**
   * Registers a route: its own middleware, then jsonBody() for a body, then the validators of its
   * path parameters, query and body (in that order), then the handler.
   */
  add<const S extends RouteSpec>(spec: S, handler: RouteHandler<S>): void {
    const { use, ...doc } = spec
    // The validators are typed for any env: they read only the request.
    const chain: MiddlewareHandler[] = [...(use ?? [])]
    if (spec.validated !== false) {
      if (spec.body) chain.push(jsonBody())
      if (spec.params) chain.push(validate('param', spec.params))
      if (spec.query) chain.push(validate('query', spec.query))
      if (spec.body) chain.push(validate('json', spec.body))
    }
    const handlers = [...chain, handler] as unknown as [Handler, ...Handler[]]
    this.app.on(spec.method.toUpperCase(), spec.path, ...handlers)
    this.docs.push({ ...doc, path: joinPath(this.base, spec.path) })
  }
}

/** The path Hono serves a group route at: `/v1/users` + `/` is `/v1/users`, `/` + `/health` is `/health`. */
function joinPath(base: string, path: string): string {
  if (path === '/') return base
  return `${base.replace(/\/$/, '')}${path}`
}
