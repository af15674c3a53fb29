import { Hono } from 'hono'
import { except } from 'hono/combine'
import { HTTPException } from 'hono/http-exception'
import type { AppEnv } from './env'
import { errorBody, StytchError } from './errors'
import { logEvent } from './log'
import { withMetrics } from './metrics'
import { projectAuth } from './middleware/auth'
import { requestId } from './middleware/request-id'
import { sdkAuth, sdkCors } from './middleware/sdk'
import { ROUTE_GROUPS } from './openapi/routes'

/**
 * The HTTP application: request ids, project authentication, routes, and the single exit for
 * errors. No business logic lives here.
 */
export const app = new Hono<AppEnv>()

// Each request gets its own metrics scope (binding and dimensions) before anything logs.
app.use('*', (c, next) => withMetrics(c.env, {}, next))
app.use('*', requestId())
app.use('*', async function noStore(c, next) {
  await next()
  c.header('Cache-Control', 'no-store')
})
app.use('/v1/otps/*', projectAuth())
app.use('/v1/users/*', projectAuth())
// The JWKS is public (verifiers fetch it without a secret); every other sessions route needs credentials.
app.use('/v1/sessions/*', except('/v1/sessions/jwks/*', projectAuth()))
// The frontend SDKs' API: CORS for every reply, then the public token and the page's origin; the
// SDK's telemetry comes without credentials (src/routes/sdk.ts).
app.use('/sdk/v1/*', sdkCors())
app.use('/sdk/v1/*', except('/sdk/v1/events', sdkAuth()))

// Every route, each declared once with its documentation (src/routes/*.ts, listed by the OpenAPI
// registry so that no route goes undocumented). Meta's webhook authenticates by signature; the dev
// outbox checks its own preconditions before the project credentials (src/routes/dev.ts).
for (const group of ROUTE_GROUPS) app.route(group.base, group.app)

app.notFound((c) => {
  const allowed = allowedMethods(c.req.path)
  if (allowed.length > 0 && !allowed.includes(c.req.method)) {
    throw new StytchError('method_not_allowed', { headers: { Allow: allowed.join(', ') } })
  }
  throw new StytchError('route_not_found', { message: `No route for ${c.req.method} ${c.req.path}.` })
})

app.onError((err, c) => {
  let error: StytchError
  if (err instanceof StytchError) {
    error = err
  } else if (err instanceof HTTPException && err.status < 500) {
    // Raised by Hono itself (e.g. a body it cannot read): a client error without internals.
    error = new StytchError('bad_request')
  } else {
    logEvent('error', 'unhandled_error', { request_id: c.var.requestId, path: c.req.path, error: describe(err) })
    error = new StytchError('internal_server_error')
  }
  const requestIdValue = c.var.requestId ?? `request-id-test-${crypto.randomUUID()}`
  const res = c.json(errorBody(error, requestIdValue), error.status)
  for (const [name, value] of Object.entries(error.headers ?? {})) res.headers.set(name, value)
  res.headers.set('X-Request-Id', requestIdValue)
  res.headers.set('Cache-Control', 'no-store')
  return res
})

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}${err.stack ? `\n${err.stack}` : ''}`
  return String(err)
}

/** Methods registered for a concrete path (to tell 405 from 404). */
function allowedMethods(path: string): string[] {
  const methods = new Set<string>()
  for (const route of app.routes) {
    if (route.method === 'ALL') continue
    const pattern = new RegExp(
      `^${route.path
        .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
        .replace(/\/:[^/]+/g, '/[^/]+')
        .replace(/\*/g, '.*')}$`,
    )
    if (pattern.test(path)) methods.add(route.method)
  }
  return [...methods]
}
