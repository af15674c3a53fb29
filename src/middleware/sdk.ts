import type { MiddlewareHandler } from 'hono'
import { now } from '../clock'
import { findProjectByPublicToken } from '../db/projects'
import { projectEnv } from '../db/shard'
import type { AppEnv } from '../env'
import { type ErrorType, StytchError } from '../errors'
import { setMetricDimensions } from '../metrics'
import { SessionToken } from '../schemas'
import { assertOriginAuthorized, isLocalDevOrigin, publicTokenEnv, requestOrigin } from '../sdk/access'
import { cookieCredential } from '../sdk/session-cookies'
import { assertNotPaused } from '../shards/pause'
import { parseBasic } from './auth'

/**
 * The two middlewares of /sdk/v1, the API Stytch's frontend SDKs call from web pages.
 *
 * sdkCors answers CORS preflights and adds the CORS headers to every reply, errors included (without
 * them the SDK sees only "Unable to contact our servers"), for an origin sdkAuth found authorized.
 * A preflight carries no credentials, so it cannot name the project: it is answered for any origin,
 * and the project's origins are enforced on the request itself, which is refused before anything is
 * read or written.
 *
 * sdkAuth: HTTP Basic `public_token:(session_token or public_token)`, as the SDK sends it. The public
 * token names the project (a project secret is refused here, as a public token is on /v1); the
 * request's origin must be one the project authorizes; the password, when it is not the public
 * token again, is the logged-in user's session token. In HttpOnly mode the session comes from the
 * service's own cookies instead. A session is never taken from a body field.
 */

/** What sdkAuth can answer (the OpenAPI document lists them for every /sdk/v1 route with credentials). */
export const SDK_AUTH_ERRORS: readonly ErrorType[] = [
  'unauthorized_credentials',
  'endpoint_not_authorized_for_sdk',
  'origin_not_authorized',
  // A project moving between shards, for a few seconds (src/shards/pause.ts).
  'service_unavailable',
]

const ALLOWED_HEADERS = 'Authorization, Content-Type, X-SDK-Client, X-SDK-Parent-Host'
const ALLOWED_METHODS = 'GET, POST, DELETE'
/** Chromium caps a preflight's lifetime at two hours. */
const PREFLIGHT_MAX_AGE_SECONDS = 7_200

export function sdkCors(): MiddlewareHandler<AppEnv> {
  return async function sdkCorsMiddleware(c, next) {
    if (c.req.method === 'OPTIONS') {
      const origin = requestOrigin(c.req.raw)
      const headers: Record<string, string> = {
        'Access-Control-Allow-Methods': ALLOWED_METHODS,
        'Access-Control-Allow-Headers': ALLOWED_HEADERS,
        'Access-Control-Max-Age': String(PREFLIGHT_MAX_AGE_SECONDS),
        Vary: 'Origin',
      }
      if (origin) {
        headers['Access-Control-Allow-Origin'] = origin
        headers['Access-Control-Allow-Credentials'] = 'true'
      }
      return c.body(null, 204, headers)
    }
    await next()
    c.res.headers.append('Vary', 'Origin')
    const origin = c.var.sdkOrigin
    if (origin) {
      c.res.headers.set('Access-Control-Allow-Origin', origin)
      c.res.headers.set('Access-Control-Allow-Credentials', 'true')
      c.res.headers.set('Access-Control-Expose-Headers', 'X-Request-Id')
    }
  }
}

export function sdkAuth(): MiddlewareHandler<AppEnv> {
  return async function sdkAuthMiddleware(c, next) {
    const origin = requestOrigin(c.req.raw)
    const credentials = parseBasic(c.req.header('authorization'))
    const tokenEnv = credentials ? publicTokenEnv(credentials.projectId) : null
    // Refusals that name no project still reach a local development page, which every test project
    // authorizes, so a mistyped test token shows its real error there.
    if (tokenEnv === 'test' && origin && isLocalDevOrigin(origin)) c.set('sdkOrigin', origin)
    if (!credentials || !tokenEnv) throw new StytchError('unauthorized_credentials')
    const publicToken = credentials.projectId
    const at = now()
    const project = await findProjectByPublicToken(c.env.DB, publicToken, at)
    if (!project) throw new StytchError('unauthorized_credentials')
    c.set('project', project)
    setMetricDimensions({ project: project.id })
    c.set('sdkOrigin', undefined)
    assertOriginAuthorized(project, origin)
    c.set('sdkOrigin', origin ?? undefined)

    const password = credentials.secret
    if (password === publicToken) {
      c.set('sdkSession', project.settings.sdk_http_only_cookies ? cookieCredential(c) : null)
    } else if (SessionToken.safeParse(password).success) {
      c.set('sdkSession', { token: password })
    } else {
      throw new StytchError('unauthorized_credentials')
    }
    // A project moving between shards is paused for a few seconds (503 with Retry-After).
    assertNotPaused(project, at)
    // From here on, DB is the database holding this project's data.
    c.env = projectEnv(c.env, project)
    await next()
  }
}
