import type { Context } from 'hono'
import { deleteCookie, getCookie, setCookie } from 'hono/cookie'
import type { AppEnv } from '../env'
import { SessionJwt, SessionToken } from '../schemas'
import type { SessionCredential } from '../sessions/credentials'

/**
 * HttpOnly mode (the project setting sdk_http_only_cookies), for a service on the app's own site:
 * the session's token and JWT travel in cookies the service sets itself, HttpOnly (no script on the
 * page can read them, so an XSS cannot steal the session), Secure and SameSite=Lax (never sent with
 * a cross-site request). They carry the names the SDK and Stytch's backend SDKs use, so the app's
 * backend reads them as it would Stytch's.
 */
export const SESSION_COOKIE = 'stytch_session'
export const SESSION_JWT_COOKIE = 'stytch_session_jwt'

type Ctx = Context<AppEnv>

/** The session the request's cookies name (the token first, else the JWT); null when none is well-formed. */
export function cookieCredential(c: Ctx): SessionCredential | null {
  const token = getCookie(c, SESSION_COOKIE)
  if (token && SessionToken.safeParse(token).success) return { token }
  const jwt = getCookie(c, SESSION_JWT_COOKIE)
  if (jwt && SessionJwt.safeParse(jwt).success) return { jwt }
  return null
}

const options = (c: Ctx) => {
  const domain = c.var.project.settings.sdk_cookie_domain
  return { path: '/', secure: true, httpOnly: true, sameSite: 'Lax' as const, ...(domain ? { domain } : {}) }
}

/** Both cookies, living as long as the session. */
export function setSessionCookies(c: Ctx, tokens: { session_token: string; session_jwt: string; expiresAt: string }) {
  const expires = new Date(tokens.expiresAt)
  setCookie(c, SESSION_COOKIE, tokens.session_token, { ...options(c), expires })
  setCookie(c, SESSION_JWT_COOKIE, tokens.session_jwt, { ...options(c), expires })
}

/** Removes both cookies (after a revoke, or when they name no live session). */
export function clearSessionCookies(c: Ctx) {
  deleteCookie(c, SESSION_COOKIE, options(c))
  deleteCookie(c, SESSION_JWT_COOKIE, options(c))
}
