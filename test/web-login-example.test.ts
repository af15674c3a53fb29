import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import { app } from '../examples/web-login/src/app'
import type { Bindings } from '../examples/web-login/src/config'
import { API_ERRORS, LOCALES, MESSAGES, negotiateLocale } from '../examples/web-login/src/i18n'
import { DUMMY_TOKEN, SITEVERIFY_URL, verifyTurnstile } from '../examples/web-login/src/turnstile'
import { ERRORS } from '../src/errors'
import worker from '../src/index'
import { newProject, type TestProject } from './helpers'

/**
 * The web-login example (examples/web-login) in workerd, with its Service Binding pointed at the
 * real service in this isolate. The browser test (test/node/web-login-browser.test.mjs) drives the
 * same flows through Chromium; this file covers what a browser cannot reach: every API error type,
 * JWT expiry and refresh, tampered cookies, Turnstile's verdicts and the request sent to the service.
 */

const SANDBOX_PHONE = '+10000000000'
const ORIGIN = 'http://localhost'
const PASS_SECRET = '1x0000000000000000000000000000000AA'
const FAIL_SECRET = '2x0000000000000000000000000000000AA'

interface ServiceCall {
  method: string
  path: string
  body: unknown
}

/** The example's bindings; AUTH reaches the real service, or `reply` when given, and records each call. */
function exampleEnv(
  project: TestProject,
  options: { reply?: (call: ServiceCall) => Response; turnstileSecret?: string; cooldown?: string } = {},
) {
  const calls: ServiceCall[] = []
  const bindings: Bindings = {
    AUTH: {
      fetch: async (input: RequestInfo | URL, init?: RequestInit) => {
        const request = new Request(input, init)
        const body = request.method === 'POST' ? await request.clone().json() : undefined
        const call = { method: request.method, path: new URL(request.url).pathname, body }
        calls.push(call)
        if (options.reply) return options.reply(call)
        const ctx = createExecutionContext()
        const res = await worker.fetch(request, env, ctx)
        await waitOnExecutionContext(ctx)
        return res
      },
    } as Bindings['AUTH'],
    STYTCH_PROJECT_ID: project.id,
    STYTCH_SECRET: project.secret,
    COOKIE_SECRET: 'test-cookie-secret-0123456789abcdef0123456789',
    TURNSTILE_SITE_KEY: '1x00000000000000000000AA',
    TURNSTILE_SECRET_KEY: options.turnstileSecret ?? PASS_SECRET,
    RESEND_COOLDOWN_SECONDS: options.cooldown ?? '30',
    OTP_MAX_ATTEMPTS: '5',
    // The example's own KV namespace; here the test bindings' one (its keys are prefixed).
    LOGINS: env.OTP_KV,
  }
  return { bindings, calls }
}

/** A browser of one: keeps the cookies the example sets and sends them back. */
function browser(bindings: Bindings, headers: Record<string, string> = {}) {
  const jar = new Map<string, string>()
  async function request(method: 'GET' | 'POST', path: string, form?: Record<string, string>) {
    const h = new Headers(headers)
    if (jar.size > 0) h.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '))
    let body: string | undefined
    if (form) {
      body = new URLSearchParams(form).toString()
      h.set('content-type', 'application/x-www-form-urlencoded')
      h.set('origin', ORIGIN)
    }
    const res = await app.request(`${ORIGIN}${path}`, { method, headers: h, body }, bindings)
    for (const line of res.headers.getSetCookie()) {
      const [pair = ''] = line.split(';')
      const eq = pair.indexOf('=')
      const name = pair.slice(0, eq)
      if (/Max-Age=0/i.test(line)) jar.delete(name)
      else jar.set(name, pair.slice(eq + 1))
    }
    return { res, html: await res.text() }
  }
  return { request, jar }
}

const alertText = (html: string) => /role="alert">([^<]*)</.exec(html)?.[1]?.replace(/&#39;/g, "'")

async function signIn(bindings: Bindings, headers: Record<string, string> = {}) {
  const b = browser(bindings, headers)
  const sent = await b.request('POST', '/login', { phone: SANDBOX_PHONE, 'cf-turnstile-response': DUMMY_TOKEN })
  expect(sent.res.status).toBe(303)
  const verified = await b.request('POST', '/verify', { code: '000000' })
  expect(verified.res.status).toBe(303)
  expect(verified.res.headers.get('location')).toBe('/account')
  return b
}

describe('web-login example: messages', () => {
  it('has a human message for every error type the service can return', () => {
    const missing = Object.keys(ERRORS).filter((type) => !(type in API_ERRORS))
    expect(missing).toEqual([])
  })

  it('has every text in all four locales', () => {
    const keys = Object.keys(MESSAGES.en).sort()
    for (const locale of LOCALES) {
      const m = MESSAGES[locale]
      expect(Object.keys(m).sort()).toEqual(keys)
      for (const [key, text] of Object.entries(m.errors)) expect(text, `${locale}.${key}`).not.toBe('')
      if (locale !== 'en') expect(m.errors.phoneType).not.toBe(MESSAGES.en.errors.phoneType)
    }
  })

  it('picks the locale from Accept-Language by q-value, then order, by primary language', () => {
    expect(negotiateLocale(undefined)).toBe('en')
    expect(negotiateLocale('de-DE,de;q=0.9')).toBe('en')
    expect(negotiateLocale('es-MX,es;q=0.9,en;q=0.8')).toBe('es')
    expect(negotiateLocale('pt-PT')).toBe('pt-br')
    expect(negotiateLocale('en;q=0.5, fr-CA;q=0.8')).toBe('fr')
    expect(negotiateLocale('fr;q=0, es')).toBe('es')
    expect(negotiateLocale('de, pt-BR;q=0.7, es;q=0.7')).toBe('pt-br')
  })
})

describe('web-login example: flow against the service', () => {
  it('signs in with the sandbox number; the session cookie is HttpOnly, Secure, SameSite=Lax', async () => {
    const project = await newProject()
    const { bindings, calls } = exampleEnv(project)
    const b = browser(bindings, {
      'cf-connecting-ip': '203.0.113.7',
      'user-agent': 'test-agent/1.0',
      'accept-language': 'es',
    })
    const sent = await b.request('POST', '/login', { phone: ' +1 000 000 0000 ', 'cf-turnstile-response': DUMMY_TOKEN })
    expect(sent.res.status).toBe(303)
    expect(calls[0]).toEqual({
      method: 'POST',
      path: '/v1/otps/whatsapp/login_or_create',
      body: {
        phone_number: SANDBOX_PHONE,
        locale: 'es',
        attributes: { ip_address: '203.0.113.7', user_agent: 'test-agent/1.0' },
      },
    })
    const form = await b.request('GET', '/')
    expect(form.html).toContain('autocomplete="one-time-code"')
    expect(form.html).toContain('--from:30;--wait:30s')

    const verified = await b.request('POST', '/verify', { code: '000 000' })
    expect(verified.res.status).toBe(303)
    const cookie = verified.res.headers.getSetCookie().find((c) => c.startsWith('__Host-wl_session='))
    expect(cookie).toMatch(/; Path=\/;.*HttpOnly; Secure; SameSite=Lax/)
    expect(calls[1]?.body).toMatchObject({
      code: '000000',
      session_duration_minutes: 60,
      attributes: { ip_address: '203.0.113.7' },
    })

    const account = await b.request('GET', '/account')
    expect(account.res.status).toBe(200)
    expect(account.html).toMatch(/data-field="user-id">user-test-[0-9a-f-]{36}</)
    expect(account.html).toContain('Verificado: Sí')
  })

  it('refreshes an expired session JWT through sessions/authenticate and keeps the person signed in', async () => {
    const project = await newProject()
    const { bindings, calls } = exampleEnv(project)
    const b = await signIn(bindings)
    const firstJwt = b.jar.get('__Host-wl_session')
    const before = calls.length
    // A fresh JWT is checked locally: no call besides the JWKS the first check fetched.
    expect((await b.request('GET', '/')).res.headers.get('location')).toBe('/account')
    expect(calls.slice(before).filter((c) => c.path === '/v1/sessions/authenticate')).toEqual([])

    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 6 * 60_000 })
    const later = await b.request('GET', '/')
    expect(later.res.headers.get('location')).toBe('/account')
    expect(calls.at(-1)).toEqual({ method: 'POST', path: '/v1/sessions/authenticate', body: { session_jwt: firstJwt } })
    expect(b.jar.get('__Host-wl_session')).not.toBe(firstJwt)
  })

  it('after sign-out the signed-in page is refused, also for a copy of the old cookie', async () => {
    const project = await newProject()
    const { bindings, calls } = exampleEnv(project)
    const b = await signIn(bindings)
    const kept = b.jar.get('__Host-wl_session') ?? ''
    const out = await b.request('POST', '/logout', {})
    expect(out.res.headers.get('location')).toBe('/?signed_out')
    expect(calls.at(-1)?.path).toBe('/v1/sessions/revoke')
    expect(b.jar.has('__Host-wl_session')).toBe(false)
    expect((await b.request('GET', '/account')).res.headers.get('location')).toBe('/')

    b.jar.set('__Host-wl_session', kept)
    const replay = await b.request('GET', '/account')
    expect(replay.res.status).toBe(401)
    expect(alertText(replay.html)).toBe(MESSAGES.en.errors.sessionEnded)
  })

  it('ignores a tampered login cookie: a resend cannot be pointed at another number', async () => {
    const project = await newProject()
    const { bindings, calls } = exampleEnv(project)
    const b = browser(bindings)
    await b.request('POST', '/login', { phone: SANDBOX_PHONE, 'cf-turnstile-response': DUMMY_TOKEN })
    const signed = decodeURIComponent(b.jar.get('__Host-wl_login') ?? '')
    const [payload = '', signature = ''] = [
      signed.slice(0, signed.lastIndexOf('.')),
      signed.slice(signed.lastIndexOf('.') + 1),
    ]
    const forged = payload.replace(SANDBOX_PHONE, '+12025550100')
    b.jar.set('__Host-wl_login', encodeURIComponent(`${forged}.${signature}`))
    const sentBefore = calls.length
    const resend = await b.request('POST', '/resend', {})
    expect(alertText(resend.html)).toBe(MESSAGES.en.errors.loginExpired)
    expect(calls.length).toBe(sentBefore)
  })

  it('refuses a cross-site form post', async () => {
    const project = await newProject()
    const { bindings, calls } = exampleEnv(project)
    const res = await app.request(
      `${ORIGIN}/login`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://attacker.example' },
        body: new URLSearchParams({ phone: SANDBOX_PHONE, 'cf-turnstile-response': DUMMY_TOKEN }).toString(),
      },
      bindings,
    )
    expect(res.status).toBe(403)
    expect(calls).toEqual([])
  })
})

describe('web-login example: errors shown to people', () => {
  const stytchError = (status: number, errorType: string) =>
    Response.json(
      {
        status_code: status,
        request_id: 'request-id-test-1',
        error_type: errorType,
        error_message: 'x',
        error_url: 'x',
      },
      { status },
    )

  it('a toll-free number, which the service refuses by its type, is told so; a malformed one is told its format', async () => {
    const project = await newProject()
    const { bindings, calls } = exampleEnv(project)
    const tollFree = await browser(bindings, { 'accept-language': 'fr' }).request('POST', '/login', {
      phone: '+1 800 234 5679',
      'cf-turnstile-response': DUMMY_TOKEN,
    })
    expect(calls.map((c) => c.path)).toEqual(['/v1/otps/whatsapp/login_or_create'])
    expect(tollFree.res.status).toBe(400)
    expect(alertText(tollFree.html)).toBe(MESSAGES.fr.errors.phoneType)
    // Not a number at all: refused here, before Turnstile and the service.
    const malformed = await browser(bindings, { 'accept-language': 'fr' }).request('POST', '/login', {
      phone: '+1 23',
      'cf-turnstile-response': DUMMY_TOKEN,
    })
    expect(alertText(malformed.html)).toBe(MESSAGES.fr.errors.phoneFormat)
    expect(calls).toHaveLength(1)
  })

  it('names the country that is not allowed, in the visitor’s language', async () => {
    const project = await newProject()
    const { bindings, calls } = exampleEnv(project)
    const page = await browser(bindings, { 'accept-language': 'es' }).request('POST', '/login', {
      phone: '+33 6 12 34 56 78',
      'cf-turnstile-response': DUMMY_TOKEN,
    })
    expect(calls.map((c) => c.path)).toEqual(['/v1/otps/whatsapp/login_or_create'])
    expect(alertText(page.html)).toBe('Todavía no podemos enviar códigos a números de Francia.')
  })

  it('wrong code: attempts left, then none; expired; locked; too many requests', async () => {
    const project = await newProject()
    let next = () => stytchError(404, 'otp_code_not_found')
    const { bindings } = exampleEnv(project, {
      reply: (call) =>
        call.path === '/v1/otps/whatsapp/login_or_create'
          ? Response.json({
              user_id: 'user-test-1',
              phone_id: 'phone-number-test-1',
              user_created: true,
              status_code: 200,
            })
          : next(),
    })
    const b = browser(bindings)
    await b.request('POST', '/login', { phone: '+1 202 555 0123', 'cf-turnstile-response': DUMMY_TOKEN })
    const seen: (string | undefined)[] = []
    for (let i = 0; i < 5; i++) seen.push(alertText((await b.request('POST', '/verify', { code: '123456' })).html))
    expect(seen).toEqual([4, 3, 2, 1, 0].map((n) => MESSAGES.en.wrongCode(n)))
    next = () => stytchError(401, 'unable_to_auth_otp_code')
    expect(alertText((await b.request('POST', '/verify', { code: '123456' })).html)).toBe(
      MESSAGES.en.errors.codeExpired,
    )
    next = () => stytchError(429, 'user_lock_limit_reached')
    expect(alertText((await b.request('POST', '/verify', { code: '123456' })).html)).toBe(MESSAGES.en.errors.locked)
    next = () => stytchError(429, 'too_many_requests')
    expect(alertText((await b.request('POST', '/verify', { code: '123456' })).html)).toBe(
      MESSAGES.en.errors.tooManyRequests,
    )
    expect(alertText((await b.request('POST', '/verify', { code: '12345' })).html)).toBe(MESSAGES.en.errors.codeFormat)
    // A resend inside the cooldown is refused here, with the seconds left.
    expect(alertText((await b.request('POST', '/resend', {})).html)).toMatch(
      /^A code was just sent\. You can ask for a new one in (29|30) seconds\.$/,
    )
  })

  it('an unreachable or misconfigured service is "unavailable", never a raw error', async () => {
    const project = await newProject()
    const { bindings } = exampleEnv(project, { reply: () => stytchError(401, 'unauthorized_credentials') })
    const page = await browser(bindings).request('POST', '/login', {
      phone: SANDBOX_PHONE,
      'cf-turnstile-response': DUMMY_TOKEN,
    })
    expect(page.res.status).toBe(503)
    expect(alertText(page.html)).toBe(MESSAGES.en.errors.unavailable)
    const down = exampleEnv(project, { reply: () => new Response('bad gateway', { status: 502 }) })
    const page2 = await browser(down.bindings).request('POST', '/login', {
      phone: SANDBOX_PHONE,
      'cf-turnstile-response': DUMMY_TOKEN,
    })
    expect(alertText(page2.html)).toBe(MESSAGES.en.errors.unavailable)
  })
})

describe('web-login example: Turnstile', () => {
  it('a failing Turnstile verdict sends no code', async () => {
    const project = await newProject()
    const { bindings, calls } = exampleEnv(project, { turnstileSecret: FAIL_SECRET })
    const page = await browser(bindings).request('POST', '/login', {
      phone: SANDBOX_PHONE,
      'cf-turnstile-response': DUMMY_TOKEN,
    })
    expect(page.res.status).toBe(400)
    expect(alertText(page.html)).toBe(MESSAGES.en.errors.turnstile)
    expect(calls).toEqual([])
  })

  it('test secrets are answered locally; other secrets go to siteverify with the token and IP, failing closed', async () => {
    const fetchFn = vi.fn<typeof fetch>()
    const expected = { remoteIp: '203.0.113.7', hostname: 'localhost', action: 'login' }
    expect(await verifyTurnstile(PASS_SECRET, DUMMY_TOKEN, expected, fetchFn)).toEqual({
      success: true,
      errorCodes: [],
    })
    expect(await verifyTurnstile(PASS_SECRET, undefined, expected, fetchFn)).toEqual({
      success: false,
      errorCodes: ['missing-input-response'],
    })
    expect(fetchFn).not.toHaveBeenCalled()

    fetchFn.mockResolvedValueOnce(Response.json({ success: false, 'error-codes': ['invalid-input-response'] }))
    expect(await verifyTurnstile('0x-real-secret', DUMMY_TOKEN, expected, fetchFn)).toEqual({
      success: false,
      errorCodes: ['invalid-input-response'],
    })
    const [url, init] = fetchFn.mock.calls[0] ?? []
    expect(url).toBe(SITEVERIFY_URL)
    const sent = init?.body as FormData
    expect([sent.get('secret'), sent.get('response'), sent.get('remoteip')]).toEqual([
      '0x-real-secret',
      DUMMY_TOKEN,
      '203.0.113.7',
    ])

    fetchFn.mockResolvedValueOnce(Response.json({ success: true, hostname: 'localhost', action: 'login' }))
    expect((await verifyTurnstile('0x-real-secret', 'token', expected, fetchFn)).success).toBe(true)
    fetchFn.mockRejectedValueOnce(new TypeError('network down'))
    expect((await verifyTurnstile('0x-real-secret', 'token', expected, fetchFn)).success).toBe(false)
  })
})

const phoneForm = { phone: SANDBOX_PHONE, 'cf-turnstile-response': DUMMY_TOKEN }

describe('web-login example: the login-in-progress cookie', () => {
  const sends = (calls: ServiceCall[]) => calls.filter((c) => c.path === '/v1/otps/whatsapp/login_or_create').length

  it('is refused 15 minutes after the login began, however it is replayed', async () => {
    const start = Date.now()
    vi.useFakeTimers({ toFake: ['Date'], now: start })
    const project = await newProject('test', { phone_send_cooldown_seconds: 0 })
    const { bindings, calls } = exampleEnv(project, { cooldown: '0' })
    const b = browser(bindings)
    await b.request('POST', '/login', phoneForm)
    const saved = b.jar.get('__Host-wl_login') ?? ''
    vi.setSystemTime(start + 14 * 60_000)
    expect((await b.request('POST', '/resend', {})).res.status).toBe(303)
    expect(sends(calls)).toBe(2)
    // The resend's cookie carries the login's start, not its own.
    vi.setSystemTime(start + 15 * 60_000 + 1_000)
    for (const cookie of [b.jar.get('__Host-wl_login') ?? '', saved]) {
      b.jar.set('__Host-wl_login', cookie)
      const resend = await b.request('POST', '/resend', {})
      expect(alertText(resend.html)).toBe(MESSAGES.en.errors.loginExpired)
      b.jar.set('__Host-wl_login', cookie)
      expect(alertText((await b.request('POST', '/verify', { code: '000000' })).html)).toBe(
        MESSAGES.en.errors.loginExpired,
      )
    }
    expect(sends(calls)).toBe(2)
  })

  it('is void once the login completes: a saved copy drives neither a resend nor a code', async () => {
    const project = await newProject('test', { phone_send_cooldown_seconds: 0 })
    const { bindings, calls } = exampleEnv(project, { cooldown: '0' })
    const b = browser(bindings)
    await b.request('POST', '/login', phoneForm)
    const saved = b.jar.get('__Host-wl_login') ?? ''
    expect((await b.request('POST', '/verify', { code: '000000' })).res.headers.get('location')).toBe('/account')
    expect(b.jar.has('__Host-wl_login')).toBe(false)
    const before = calls.length
    const thief = browser(bindings)
    thief.jar.set('__Host-wl_login', saved)
    expect(alertText((await thief.request('POST', '/resend', {})).html)).toBe(MESSAGES.en.errors.loginExpired)
    thief.jar.set('__Host-wl_login', saved)
    expect(alertText((await thief.request('POST', '/verify', { code: '000000' })).html)).toBe(
      MESSAGES.en.errors.loginExpired,
    )
    thief.jar.set('__Host-wl_login', saved)
    expect((await thief.request('GET', '/')).html).not.toContain('autocomplete="one-time-code"')
    expect(calls.length).toBe(before)
  })

  it('needs Turnstile again after two resends', async () => {
    const project = await newProject('test', { phone_send_cooldown_seconds: 0 })
    const { bindings, calls } = exampleEnv(project, { cooldown: '0' })
    const b = browser(bindings)
    await b.request('POST', '/login', phoneForm)
    for (let i = 0; i < 2; i++) expect((await b.request('POST', '/resend', {})).res.status).toBe(303)
    expect(sends(calls)).toBe(3)
    // The code form now asks for the check with the resend.
    const form = await b.request('GET', '/')
    expect(form.html).toMatch(/<form method="post" action="\/resend"[^>]*>.*name="cf-turnstile-response"/s)
    const refused = await b.request('POST', '/resend', {})
    expect(refused.res.status).toBe(400)
    expect(alertText(refused.html)).toBe(MESSAGES.en.errors.turnstile)
    expect(sends(calls)).toBe(3)
    expect((await b.request('POST', '/resend', { 'cf-turnstile-response': DUMMY_TOKEN })).res.status).toBe(303)
    expect(sends(calls)).toBe(4)
    // A failing verdict sends nothing.
    const failing = exampleEnv(project, { cooldown: '0', turnstileSecret: FAIL_SECRET })
    const again = await browser(failing.bindings).request('POST', '/resend', {})
    expect(again.res.status).toBe(400)
    const other = browser(failing.bindings)
    for (const [k, v] of b.jar) other.jar.set(k, v)
    const failed = await other.request('POST', '/resend', { 'cf-turnstile-response': DUMMY_TOKEN })
    expect(alertText(failed.html)).toBe(MESSAGES.en.errors.turnstile)
    expect(failing.calls).toEqual([])
  })
})

describe('web-login example: Turnstile in production', () => {
  const REAL_SECRET = '0x4AAAAAAAexample-real-secret'

  it("checks siteverify's hostname and action, not only its success", async () => {
    const fetchFn = vi.fn<typeof fetch>()
    const expected = { remoteIp: '203.0.113.7', hostname: 'login.example.com', action: 'login' }
    const reply = (body: Record<string, unknown>) => fetchFn.mockResolvedValueOnce(Response.json(body))
    reply({ success: true, hostname: 'login.example.com', action: 'login' })
    expect(await verifyTurnstile(REAL_SECRET, 'token', expected, fetchFn)).toEqual({ success: true, errorCodes: [] })
    reply({ success: true, hostname: 'attacker.example', action: 'login' })
    expect(await verifyTurnstile(REAL_SECRET, 'token', expected, fetchFn)).toEqual({
      success: false,
      errorCodes: ['hostname-mismatch'],
    })
    reply({ success: true, hostname: 'login.example.com', action: 'resend' })
    expect(await verifyTurnstile(REAL_SECRET, 'token', expected, fetchFn)).toEqual({
      success: false,
      errorCodes: ['action-mismatch'],
    })
    reply({ success: true })
    expect((await verifyTurnstile(REAL_SECRET, 'token', expected, fetchFn)).success).toBe(false)
  })

  it('sends the page its own hostname and the form its action; a token for another site sends no code', async () => {
    const project = await newProject()
    const { bindings, calls } = exampleEnv(project, { turnstileSecret: REAL_SECRET })
    bindings.TURNSTILE_SITE_KEY = '0x4AAAAAAAexample-sitekey'
    const siteverify = vi
      .spyOn(globalThis, 'fetch')
      .mockImplementation(async () => Response.json({ success: true, hostname: 'attacker.example', action: 'login' }))
    const page = await browser(bindings).request('GET', '/')
    expect(page.html).toContain('data-action="login"')
    const sent = await browser(bindings).request('POST', '/login', {
      phone: SANDBOX_PHONE,
      'cf-turnstile-response': 'tok',
    })
    expect(siteverify).toHaveBeenCalledTimes(1)
    expect(sent.res.status).toBe(400)
    expect(calls).toEqual([])
    siteverify.mockImplementation(async () => Response.json({ success: true, hostname: 'localhost', action: 'login' }))
    const ok = await browser(bindings).request('POST', '/login', {
      phone: SANDBOX_PHONE,
      'cf-turnstile-response': 'tok',
    })
    expect(ok.res.status).toBe(303)
  })

  it('refuses to run a live project with a Turnstile test key, which passes every request', async () => {
    const live = await newProject('live')
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    for (const keys of [{ turnstileSecret: PASS_SECRET }, { siteKey: '1x00000000000000000000AA' }]) {
      const { bindings, calls } = exampleEnv(live, { turnstileSecret: keys.turnstileSecret ?? '0x4AAAAAAAreal' })
      if (!keys.siteKey) bindings.TURNSTILE_SITE_KEY = '0x4AAAAAAAexample-sitekey'
      const page = await browser(bindings).request('POST', '/login', phoneForm)
      expect(page.res.status).toBe(500)
      expect(calls).toEqual([])
    }
    expect(errors).toHaveBeenCalledWith(expect.stringContaining('test key'))
  })
})
