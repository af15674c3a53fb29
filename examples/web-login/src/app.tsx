import { type Context, Hono } from 'hono'
import { deleteCookie, getCookie, getSignedCookie, setCookie, setSignedCookie } from 'hono/cookie'
import { csrf } from 'hono/csrf'
import { HTTPException } from 'hono/http-exception'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { parsePhoneNumberFromString } from 'libphonenumber-js/min'
import { ApiError, type Attributes, authApi } from './api'
import { type Bindings, type Config, config } from './config'
import { API_ERRORS, type Locale, MESSAGES, negotiateLocale } from './i18n'
import { type SessionClaims, verifySessionJwt } from './jwt'
import { Page, type View } from './page'
import { verifyTurnstile } from './turnstile'

/**
 * The relying app: a phone form, a code form and a signed-in page, all rendered here. The project
 * secret never leaves this Worker; the browser holds two HttpOnly cookies:
 * - `__Host-wl_login`: the login in progress (its id, when it began, the number, phone_id, when the
 *   last code was sent, resends, wrong codes typed), signed with COOKIE_SECRET so the browser cannot
 *   point a resend at another number. The server refuses it LOGIN_MAX_AGE_MS after the login began and
 *   once the login has completed (its id in the LOGINS KV namespace), so a saved copy replayed later
 *   drives nothing; after FREE_RESENDS resends, each further one needs Turnstile again;
 * - `__Host-wl_session`: the session JWT, verified locally against the service's JWKS on every
 *   request and exchanged for a fresh one through sessions/authenticate once it expires.
 */

type AppEnv = { Bindings: Bindings; Variables: { locale: Locale; cfg: Config } }

const LOGIN_COOKIE = 'wl_login'
const SESSION_COOKIE = 'wl_session'
const LOGIN_MAX_AGE_MS = 15 * 60_000
const COOKIE_BASE = { prefix: 'host', path: '/', secure: true, httpOnly: true, sameSite: 'Lax' } as const
/** Resends a login gets on the strength of the Turnstile check that began it. */
const FREE_RESENDS = 2

/** The login in progress, as kept in the signed cookie. */
interface PendingLogin {
  /** Random; names the login in LOGINS once it has completed. */
  id: string
  /** When the login began (ms): the cookie is refused LOGIN_MAX_AGE_MS later, whatever happened since. */
  issuedAt: number
  phone: string
  phoneId: string
  sentAt: number
  resends: number
  wrongCodes: number
}

/** The LOGINS key of a completed login. */
const completedKey = (id: string) => `web-login:completed:${id}`

export const app = new Hono<AppEnv>()

app.use('*', async function pageDefaults(c, next) {
  c.set('locale', negotiateLocale(c.req.header('accept-language')))
  c.set('cfg', config(c.env))
  await next()
  c.header('Cache-Control', 'no-store')
  c.header('Content-Language', c.var.locale)
  c.header('Vary', 'Accept-Language, Cookie')
  c.header('X-Content-Type-Options', 'nosniff')
  c.header('Referrer-Policy', 'same-origin')
  c.header(
    'Content-Security-Policy',
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; script-src https://challenges.cloudflare.com; " +
      "frame-src https://challenges.cloudflare.com; connect-src https://challenges.cloudflare.com; form-action 'self'; " +
      "frame-ancestors 'none'; base-uri 'none'",
  )
})
// Form posts must come from this origin (the cookies are SameSite=Lax as well).
app.use('*', csrf())

app.get('/health', (c) => c.json({ status: 'ok' }))

app.get('/', async (c) => {
  const session = await currentSession(c)
  if (session.kind === 'valid') return c.redirect('/account', 303)
  if (session.kind === 'ended') return render(c, { kind: 'phone', error: messages(c).errors.sessionEnded }, 401)
  const pending = await pendingLogin(c)
  const notice = c.req.query('signed_out') !== undefined ? messages(c).signedOut : undefined
  if (!pending) return render(c, { kind: 'phone', notice })
  const resent = c.req.query('resent') !== undefined ? messages(c).codeResent : undefined
  return render(c, codeView(c, pending, { notice: resent }))
})

app.post('/login', async (c) => {
  const form = await c.req.parseBody()
  const raw = typeof form.phone === 'string' ? form.phone.trim().slice(0, 64) : ''
  const parsed = parsePhoneNumberFromString(raw)
  if (!parsed?.isPossible()) {
    return render(c, { kind: 'phone', phone: raw, error: messages(c).errors.phoneFormat }, 400)
  }
  const { cfg } = c.var
  const attributes = requestAttributes(c)
  if (!(await human(c, form, 'login'))) {
    return render(c, { kind: 'phone', phone: raw, error: messages(c).errors.turnstile }, 400)
  }
  try {
    const sent = await authApi(c.env, cfg).loginOrCreate({
      phone_number: parsed.number,
      locale: c.var.locale,
      attributes,
    })
    const at = Date.now()
    await savePending(c, {
      id: crypto.randomUUID(),
      issuedAt: at,
      phone: parsed.number,
      phoneId: sent.phone_id,
      sentAt: at,
      resends: 0,
      wrongCodes: 0,
    })
    return c.redirect('/', 303)
  } catch (err) {
    const { message, status } = apiErrorMessage(c, err, { phone: parsed.number })
    return render(c, { kind: 'phone', phone: raw, error: message }, status)
  }
})

app.post('/verify', async (c) => {
  const pending = await pendingLogin(c)
  if (!pending) return render(c, { kind: 'phone', error: messages(c).errors.loginExpired }, 400)
  const form = await c.req.parseBody()
  const code = typeof form.code === 'string' ? form.code.replace(/[\s-]/g, '') : ''
  if (!/^\d{6}$/.test(code)) return render(c, codeView(c, pending, { error: messages(c).errors.codeFormat }), 400)
  const { cfg } = c.var
  try {
    const auth = await authApi(c.env, cfg).authenticate({
      method_id: pending.phoneId,
      code,
      attributes: requestAttributes(c),
    })
    setSession(c, auth.session_jwt)
    deleteCookie(c, LOGIN_COOKIE, COOKIE_BASE)
    await completeLogin(c, pending)
    return c.redirect('/account', 303)
  } catch (err) {
    if (err instanceof ApiError && err.errorType === 'otp_code_not_found') {
      const wrongCodes = pending.wrongCodes + 1
      await savePending(c, { ...pending, wrongCodes })
      const error = messages(c).wrongCode(cfg.otpMaxAttempts - wrongCodes)
      return render(c, codeView(c, { ...pending, wrongCodes }, { error }), 401)
    }
    // A 429 here is about failed codes (per IP), not the resend cooldown: no `pending` for the cooldown.
    const { message, status, restart } = apiErrorMessage(c, err, { phone: pending.phone })
    if (restart) {
      deleteCookie(c, LOGIN_COOKIE, COOKIE_BASE)
      return render(c, { kind: 'phone', error: message }, status)
    }
    return render(c, codeView(c, pending, { error: message }), status)
  }
})

app.post('/resend', async (c) => {
  const pending = await pendingLogin(c)
  if (!pending) return render(c, { kind: 'phone', error: messages(c).errors.loginExpired }, 400)
  const wait = resendInSeconds(c, pending)
  if (wait > 0) return render(c, codeView(c, pending, { error: messages(c).cooldown(wait) }), 429)
  if (pending.resends >= FREE_RESENDS && !(await human(c, await c.req.parseBody(), 'resend'))) {
    return render(c, codeView(c, pending, { error: messages(c).errors.turnstile }), 400)
  }
  try {
    const sent = await authApi(c.env, c.var.cfg).loginOrCreate({
      phone_number: pending.phone,
      locale: c.var.locale,
      attributes: requestAttributes(c),
    })
    const resent = { phoneId: sent.phone_id, sentAt: Date.now(), resends: pending.resends + 1, wrongCodes: 0 }
    await savePending(c, { ...pending, ...resent })
    return c.redirect('/?resent', 303)
  } catch (err) {
    const { message, status } = apiErrorMessage(c, err, { phone: pending.phone, pending })
    return render(c, codeView(c, pending, { error: message }), status)
  }
})

app.post('/restart', (c) => {
  deleteCookie(c, LOGIN_COOKIE, COOKIE_BASE)
  return c.redirect('/', 303)
})

/**
 * The signed-in page. The local check turns away a missing, forged or foreign cookie without an API
 * call; the user record the page shows comes from sessions/authenticate, which also refuses a revoked
 * session at once (a JWT alone stays valid until it expires, up to five minutes after sign-out).
 */
app.get('/account', async (c) => {
  const session = await currentSession(c)
  if (session.kind === 'none') return c.redirect('/', 303)
  if (session.kind === 'ended') return render(c, { kind: 'phone', error: messages(c).errors.sessionEnded }, 401)
  try {
    const live = await authApi(c.env, c.var.cfg).authenticateSession(session.jwt)
    setSession(c, live.session_jwt)
    const whatsapp = live.session.authentication_factors.find((f) => f.delivery_method === 'whatsapp')
    const { locale } = c.var
    return render(c, {
      kind: 'account',
      userId: live.user.user_id,
      phones: live.user.phone_numbers.map((p) => ({
        phone_number: parsePhoneNumberFromString(p.phone_number)?.formatInternational() ?? p.phone_number,
        verified: p.verified,
      })),
      status: live.user.status,
      sessionExpires: formatTime(locale, live.session.expires_at),
      factor: whatsapp ? messages(c).factorText(formatTime(locale, whatsapp.last_authenticated_at)) : undefined,
    })
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      deleteCookie(c, SESSION_COOKIE, COOKIE_BASE)
      return render(c, { kind: 'phone', error: messages(c).errors.sessionEnded }, 401)
    }
    const { message, status } = apiErrorMessage(c, err, {})
    return render(c, { kind: 'phone', error: message }, status)
  }
})

app.post('/logout', async (c) => {
  const jwt = getCookie(c, SESSION_COOKIE, 'host')
  deleteCookie(c, SESSION_COOKIE, COOKIE_BASE)
  if (jwt) {
    const { cfg } = c.var
    const api = authApi(c.env, cfg)
    const verdict = await verifySessionJwt(jwt, cfg.projectId, api.jwks)
    const sessionId =
      verdict.kind === 'valid' ? verdict.claims.sessionId : verdict.kind === 'expired' ? verdict.sessionId : undefined
    if (sessionId) {
      try {
        await api.revokeSession(sessionId)
      } catch (err) {
        // Already gone is what signing out wants; anything else is logged, and the cookie is gone anyway.
        if (!(err instanceof ApiError && err.errorType === 'session_not_found')) logApiError(err)
      }
    }
  }
  return c.redirect('/?signed_out', 303)
})

app.notFound((c) => c.redirect('/', 303))

app.onError((err, c) => {
  // Hono's own refusals (a cross-site form post is a 403 from csrf()) keep their status.
  if (err instanceof HTTPException) return err.getResponse()
  console.error(JSON.stringify({ event: 'unhandled_error', error: err instanceof Error ? err.message : String(err) }))
  const locale = negotiateLocale(c.req.header('accept-language'))
  return c.html(
    `<!doctype html><html lang="${locale}"><title>Error</title><p>${MESSAGES[locale].errors.unavailable}</p></html>`,
    500,
  )
})

// ---------------------------------------------------------------------------------------------------

type SessionState = { kind: 'valid'; claims: SessionClaims; jwt: string } | { kind: 'ended' } | { kind: 'none' }

/**
 * The session cookie, verified locally; an expired JWT is exchanged for a fresh one
 * (sessions/authenticate) while its session lives. `ended` clears the cookie.
 */
async function currentSession(c: Context<AppEnv>): Promise<SessionState> {
  const jwt = getCookie(c, SESSION_COOKIE, 'host')
  if (!jwt) return { kind: 'none' }
  const { cfg } = c.var
  const api = authApi(c.env, cfg)
  const verdict = await verifySessionJwt(jwt, cfg.projectId, api.jwks)
  if (verdict.kind === 'valid') return { ...verdict, jwt }
  if (verdict.kind === 'expired') {
    try {
      const refreshed = await api.authenticateSession(jwt)
      const fresh = await verifySessionJwt(refreshed.session_jwt, cfg.projectId, api.jwks)
      if (fresh.kind === 'valid') {
        setSession(c, refreshed.session_jwt)
        return { ...fresh, jwt: refreshed.session_jwt }
      }
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) {
        // The service could not answer: the person stays signed in on the next try.
        logApiError(err)
        throw err
      }
    }
  }
  deleteCookie(c, SESSION_COOKIE, COOKIE_BASE)
  return { kind: 'ended' }
}

function setSession(c: Context<AppEnv>, jwt: string) {
  setCookie(c, SESSION_COOKIE, jwt, { ...COOKIE_BASE, maxAge: c.var.cfg.sessionDurationMinutes * 60 })
}

/** The signed cookie's login, if well formed. */
async function signedLogin(c: Context<AppEnv>): Promise<PendingLogin | null> {
  const value = await getSignedCookie(c, c.var.cfg.cookieSecret, LOGIN_COOKIE, 'host')
  if (!value) return null
  try {
    const p = JSON.parse(value) as Partial<PendingLogin>
    if (typeof p.id !== 'string' || typeof p.phone !== 'string' || typeof p.phoneId !== 'string') return null
    const { issuedAt, sentAt, resends, wrongCodes } = p
    if (typeof issuedAt !== 'number' || typeof sentAt !== 'number') return null
    if (typeof resends !== 'number' || typeof wrongCodes !== 'number') return null
    return { id: p.id, issuedAt, phone: p.phone, phoneId: p.phoneId, sentAt, resends, wrongCodes }
  } catch {
    return null
  }
}

/**
 * The login in progress: the signed cookie's, unless the login began LOGIN_MAX_AGE_MS ago or has
 * completed. The browser drops the cookie by then too, but a copy someone kept is refused here. A
 * refused cookie is cleared.
 */
async function pendingLogin(c: Context<AppEnv>): Promise<PendingLogin | null> {
  const pending = await signedLogin(c)
  if (!pending) return null
  const age = Date.now() - pending.issuedAt
  if (age >= 0 && age < LOGIN_MAX_AGE_MS && (await c.env.LOGINS.get(completedKey(pending.id))) === null) return pending
  deleteCookie(c, LOGIN_COOKIE, COOKIE_BASE)
  return null
}

async function savePending(c: Context<AppEnv>, pending: PendingLogin) {
  const leftMs = pending.issuedAt + LOGIN_MAX_AGE_MS - Date.now()
  await setSignedCookie(c, LOGIN_COOKIE, JSON.stringify(pending), c.var.cfg.cookieSecret, {
    ...COOKIE_BASE,
    maxAge: Math.max(1, Math.ceil(leftMs / 1_000)),
  })
}

/**
 * Records that the login completed, so a copy of its cookie drives nothing more, for as long as the
 * cookie could otherwise be used (KV keeps a key at least 60 s). KV is eventually consistent: another
 * location may still accept a copy for up to about a minute, within the 15-minute bound. A failed
 * write is logged; the person is signed in either way.
 */
async function completeLogin(c: Context<AppEnv>, pending: PendingLogin) {
  const leftSeconds = Math.ceil((pending.issuedAt + LOGIN_MAX_AGE_MS - Date.now()) / 1_000)
  try {
    await c.env.LOGINS.put(completedKey(pending.id), '1', { expirationTtl: Math.max(60, leftSeconds) })
  } catch (err) {
    console.error(
      JSON.stringify({ event: 'login_complete_unrecorded', error: err instanceof Error ? err.message : String(err) }),
    )
  }
}

/**
 * Turnstile for `action` ('login' or 'resend'): the form's token, checked with the visitor's IP,
 * this page's hostname and the action the form's widget declared. A failure is logged.
 */
async function human(c: Context<AppEnv>, form: Record<string, unknown>, action: 'login' | 'resend') {
  const token = typeof form['cf-turnstile-response'] === 'string' ? form['cf-turnstile-response'] : undefined
  const expected = { remoteIp: requestAttributes(c).ip_address, hostname: new URL(c.req.url).hostname, action }
  const verdict = await verifyTurnstile(c.var.cfg.turnstileSecretKey, token, expected)
  if (!verdict.success)
    console.log(JSON.stringify({ event: 'turnstile_failed', action, error_codes: verdict.errorCodes }))
  return verdict.success
}

function resendInSeconds(c: Context<AppEnv>, pending: PendingLogin): number {
  const readyAt = pending.sentAt + c.var.cfg.resendCooldownSeconds * 1_000
  return Math.max(0, Math.ceil((readyAt - Date.now()) / 1_000))
}

function codeView(
  c: Context<AppEnv>,
  pending: PendingLogin,
  extra: { error?: string; notice?: string | undefined },
): View {
  const parsed = parsePhoneNumberFromString(pending.phone)
  const outbox = c.var.cfg.devOutboxUrl
  return {
    kind: 'code',
    phoneDisplay: parsed?.formatInternational() ?? pending.phone,
    country: countryName(c.var.locale, parsed?.country),
    resendInSeconds: resendInSeconds(c, pending),
    resendTurnstile: pending.resends >= FREE_RESENDS,
    outbox: outbox
      ? { url: `${outbox}?phone_number=${encodeURIComponent(pending.phone)}`, projectId: c.var.cfg.projectId }
      : undefined,
    ...(extra.error ? { error: extra.error } : {}),
    ...(extra.notice ? { notice: extra.notice } : {}),
  }
}

/** The visitor's IP (Cloudflare's CF-Connecting-IP) and user agent, for the service's abuse limits. */
function requestAttributes(c: Context<AppEnv>): Attributes {
  const attributes: Attributes = {}
  const ip = c.req.header('cf-connecting-ip')?.trim()
  if (ip && /^[0-9a-fA-F:.]{2,45}$/.test(ip)) attributes.ip_address = ip
  const agent = c.req.header('user-agent')
  if (agent) attributes.user_agent = agent.slice(0, 1024)
  return attributes
}

/**
 * The human message for a failed API call, its HTTP status for the page, and whether the login in
 * progress is over (the person must start again).
 */
function apiErrorMessage(
  c: Context<AppEnv>,
  err: unknown,
  context: {
    phone?: string /** A send: a 429 inside this login's cooldown is the cooldown. */
    pending?: PendingLogin
  },
): { message: string; status: ContentfulStatusCode; restart: boolean } {
  const m = messages(c)
  if (!(err instanceof ApiError)) throw err
  const kind = API_ERRORS[err.errorType] ?? 'generic'
  if (kind === 'unavailable' || kind === 'generic') logApiError(err)
  const status: ContentfulStatusCode =
    kind === 'unavailable' ? 503 : err.status >= 400 && err.status < 500 ? (err.status as ContentfulStatusCode) : 502
  const parsed = context.phone ? parsePhoneNumberFromString(context.phone) : undefined
  switch (kind) {
    case 'phoneFormatOrType':
      // The number is well formed here, so the service refused its type (premium-rate, toll-free…).
      return { message: parsed?.isValid() ? m.errors.phoneType : m.errors.phoneFormat, status, restart: true }
    case 'countryNotAllowed':
      return { message: m.countryNotAllowed(countryName(c.var.locale, parsed?.country)), status, restart: true }
    case 'wrongCode':
      return { message: m.wrongCode(undefined), status, restart: false }
    case 'tooManyRequests': {
      const wait = context.pending ? resendInSeconds(c, context.pending) : 0
      return { message: wait > 0 ? m.cooldown(wait) : m.errors.tooManyRequests, status, restart: false }
    }
    case 'loginExpired':
    case 'sessionEnded':
      return { message: m.errors[kind], status, restart: true }
    default:
      return { message: m.errors[kind], status, restart: false }
  }
}

function logApiError(err: unknown) {
  const fields =
    err instanceof ApiError
      ? { error_type: err.errorType, status: err.status, request_id: err.requestId }
      : { error: err instanceof Error ? err.message : String(err) }
  console.error(JSON.stringify({ event: 'auth_api_error', ...fields }))
}

const messages = (c: Context<AppEnv>) => MESSAGES[c.var.locale]

function countryName(locale: Locale, country: string | undefined): string | undefined {
  if (!country) return undefined
  try {
    return new Intl.DisplayNames([locale], { type: 'region' }).of(country)
  } catch {
    return country
  }
}

function formatTime(locale: Locale, iso: string): string {
  const date = new Date(iso)
  if (Number.isNaN(date.getTime())) return iso
  return `${new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' }).format(date)} UTC`
}

function render(c: Context<AppEnv>, view: View, status: ContentfulStatusCode = 200) {
  return c.html(
    `<!doctype html>${(<Page locale={c.var.locale} turnstileSiteKey={c.var.cfg.turnstileSiteKey} view={view} />).toString()}`,
    status,
  )
}
