import type { MiddlewareHandler } from 'hono'
import type { AppEnv } from '../env'

/**
 * Gives every request a fresh Stytch-style request id (`request-id-<env>-<uuid>`), readable as
 * `c.var.requestId` and returned in the `X-Request-Id` header and every body. The environment infix
 * is read from the claimed project id (or public token) in the Authorization header (it is not secret, and the id is
 * needed before authentication so that 401s carry one too).
 */
export function requestId(): MiddlewareHandler<AppEnv> {
  return async function requestIdMiddleware(c, next) {
    c.set('requestId', `request-id-${claimedEnv(c.req.header('authorization'))}-${crypto.randomUUID()}`)
    await next()
    c.header('X-Request-Id', c.var.requestId)
  }
}

function claimedEnv(authorization: string | undefined): 'test' | 'live' {
  if (!authorization?.startsWith('Basic ')) return 'test'
  try {
    const user = atob(authorization.slice(6).trim())
    return user.startsWith('project-live-') || user.startsWith('public-token-live-') ? 'live' : 'test'
  } catch {
    return 'test'
  }
}
