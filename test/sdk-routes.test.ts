import { describe, expect, it } from 'vitest'
import { callJson, expectStytchError, tableCounts, tableRows } from './helpers'
import { authenticate, dbPhone, send } from './otp-helpers'
import { dataOf, PAGE_ORIGIN, sdkCall, sdkLogin, sdkLoginCode, sdkProject } from './sdk-helpers'
import { login as backendLogin, sessionsAuthenticate } from './session-helpers'

// Every /sdk/v1 route as the SDK calls it, mapped onto the /v1 logic: replies in { data }, the
// session from the credentials, and what a browser is refused that a backend may do.

const TABLES = ['users', 'phones', 'otp_codes', 'deliveries', 'sessions'] as const
const LOGIN = '/otps/whatsapp/login_or_create'

describe('GET /sdk/v1/projects/bootstrap/{public_token}', () => {
  it('has every field the SDK maps, with CAPTCHA, PKCE, fingerprinting and the watermark off', async () => {
    const p = await sdkProject()
    const data = dataOf(await sdkCall('GET', `/projects/bootstrap/${p.publicToken}`, p))
    expect(data).toEqual({
      request_id: expect.stringMatching(/^request-id-test-/),
      status_code: 200,
      project_name: 'test',
      vertical: 'CONSUMER',
      disable_sdk_watermark: true,
      captcha_settings: { enabled: false },
      cname_domain: null,
      email_domains: [],
      pkce_required_for_email_magic_links: false,
      pkce_required_for_password_resets: false,
      pkce_required_for_oauth: false,
      pkce_required_for_sso: false,
      slug_pattern: null,
      create_organization_enabled: false,
      password_config: null,
      dfp_protected_auth_enabled: false,
      dfp_protected_auth_mode: null,
      rbac_policy: { roles: [], resources: [], scopes: [] },
      siwe_required_for_crypto_wallets: false,
    })
  })

  it("refuses another project's token in the path", async () => {
    const [p, q] = await Promise.all([sdkProject(), sdkProject()])
    expectStytchError(await sdkCall('GET', `/projects/bootstrap/${q.publicToken}`, p), 401, 'unauthorized_credentials')
  })
})

describe('OTP routes', () => {
  it('login_or_create replies with the method_id only (no user_id, no user_created)', async () => {
    const p = await sdkProject()
    const first = await sdkLoginCode(p, '+12025550201', { body: { expiration_minutes: 5, locale: 'es' } })
    expect(first.body).toEqual({
      data: { request_id: expect.any(String), status_code: 200, method_id: first.phoneId },
    })
    expect(first.job).toMatchObject({ locale: 'es' })
    // An existing user gets the same reply shape: nothing tells the two apart.
    const again = await sdkLoginCode(p, '+12025550201', { body: { dfp_telemetry_id: 'dfp', captcha_token: 'c' } })
    expect(Object.keys(again.body.data as object).sort()).toEqual(['method_id', 'request_id', 'status_code'])
    expect(again.phoneId).toBe(first.phoneId)
  })

  it('otps/authenticate takes the code as token and replies with the user, the session and its tokens', async () => {
    const p = await sdkProject()
    const login = await sdkLogin(p, '+12025550202', 45)
    expect(login.data).toEqual({
      request_id: expect.any(String),
      status_code: 200,
      method_id: login.phoneId,
      user_id: login.userId,
      user: expect.objectContaining({
        user_id: login.userId,
        status: 'active',
        phone_numbers: [{ phone_id: login.phoneId, phone_number: '+12025550202', verified: true }],
      }),
      session: expect.objectContaining({ user_id: login.userId }),
      reset_sessions: false,
      session_token: expect.stringMatching(/^[A-Za-z0-9_-]{44}$/),
      session_jwt: expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/),
    })
    const session = login.data.session as { started_at: string; expires_at: string }
    expect(Date.parse(session.expires_at) - Date.parse(session.started_at)).toBe(45 * 60_000)
    // A backend sees the same session.
    const backend = await sessionsAuthenticate(p, { session_token: login.token })
    expect(backend.status).toBe(200)
  })

  it('otps/authenticate without session_duration_minutes starts a session of the SDK default (30 minutes)', async () => {
    const p = await sdkProject()
    const { code, phoneId } = await sdkLoginCode(p, '+12025550203')
    const data = dataOf(await sdkCall('POST', '/otps/authenticate', p, { body: { token: code, method_id: phoneId } }))
    const session = data.session as { started_at: string; expires_at: string }
    expect(Date.parse(session.expires_at) - Date.parse(session.started_at)).toBe(30 * 60_000)
  })

  it('otps/authenticate: a wrong code is the /v1 error, with the attempt counted', async () => {
    const p = await sdkProject()
    const { code, phoneId } = await sdkLoginCode(p, '+12025550204')
    const wrongCode = code === '000001' ? '000002' : '000001'
    const res = await sdkCall('POST', '/otps/authenticate', p, {
      body: { token: wrongCode, method_id: phoneId, session_duration_minutes: 30 },
    })
    expectStytchError(res, 404, 'otp_code_not_found')
    expect(res.headers.get('access-control-allow-origin')).toBe(PAGE_ORIGIN)
    expect((await tableRows<{ attempts: number }>(['otp_codes'], { projectId: p.id })).otp_codes?.[0]?.attempts).toBe(1)
  })

  it('send/primary sends to a number that has a user; an unknown number is 404', async () => {
    const p = await sdkProject()
    const login = await sdkLogin(p, '+12025550205')
    const res = await sdkCall('POST', '/otps/whatsapp/send/primary', p, { body: { phone_number: '+12025550205' } })
    expect(dataOf(res)).toEqual({ request_id: expect.any(String), status_code: 200, method_id: login.phoneId })
    const unknown = await sdkCall('POST', '/otps/whatsapp/send/primary', p, { body: { phone_number: '+12025550299' } })
    expectStytchError(unknown, 404, 'phone_number_not_found')
  })

  it("send/secondary adds a number to the session's user, under /v1 send's attach rules", async () => {
    const p = await sdkProject()
    const login = await sdkLogin(p, '+12025550206')
    const added = await sdkLoginCode(p, '+12025550207', { path: 'send/secondary', session: login.token })
    expect(await dbPhone(added.phoneId)).toMatchObject({ user_id: login.userId, verified: 0 })
    expect((await dbPhone(added.phoneId))?.attach_expires_at).not.toBeNull()
    // Verified with the session: the factor joins the same session.
    const res = await sdkCall('POST', '/otps/authenticate', p, {
      session: login.token,
      body: { token: added.code, method_id: added.phoneId },
    })
    const data = dataOf(res)
    expect(data.session_token).toBe(login.token)
    expect((data.session as { session_id: string }).session_id).toBe(
      (login.data.session as { session_id: string }).session_id,
    )
    expect(await dbPhone(added.phoneId)).toMatchObject({ verified: 1, attach_expires_at: null })

    // Another user's number is refused and changes nothing; without a session the route is closed.
    const other = await backendLogin(p, '+12025550208')
    const before = await tableCounts(TABLES, { projectId: p.id })
    const taken = await sdkCall('POST', '/otps/whatsapp/send/secondary', p, {
      session: login.token,
      body: { phone_number: '+12025550208' },
    })
    expectStytchError(taken, 409, 'duplicate_phone_number')
    expect(await dbPhone(other.phoneId)).toMatchObject({ user_id: other.userId })
    const loggedOut = await sdkCall('POST', '/otps/whatsapp/send/secondary', p, {
      body: { phone_number: '+12025550209' },
    })
    expectStytchError(loggedOut, 401, 'unauthorized_credentials')
    expect(await tableCounts(TABLES, { projectId: p.id })).toEqual(before)
  })
})

describe('SMS routes', () => {
  it('login_or_create, send/primary and send/secondary send by SMS under the same phone_id, and the code logs in', async () => {
    const p = await sdkProject({ sms_autofill_domain: 'login.example.com' })
    const first = await sdkLoginCode(p, '+12025550211', { channel: 'sms', body: { enable_autofill: true } })
    expect(first.body).toEqual({
      data: { request_id: expect.any(String), status_code: 200, method_id: first.phoneId },
    })
    expect(first.job).toMatchObject({ channel: 'sms', autofill_domain: 'login.example.com' })
    // The number keeps its phone_id whatever the channel: a WhatsApp login names the same method.
    const whatsapp = await sdkLoginCode(p, '+12025550211')
    expect(whatsapp.phoneId).toBe(first.phoneId)
    const primary = await sdkLoginCode(p, '+12025550211', { channel: 'sms', path: 'send/primary' })
    expect(primary.job).toMatchObject({ channel: 'sms' })
    expect(primary.job.autofill_domain).toBeUndefined()
    const res = await sdkCall('POST', '/otps/authenticate', p, {
      body: { token: primary.code, method_id: primary.phoneId, session_duration_minutes: 30 },
    })
    const data = dataOf(res)
    expect(data.session).toMatchObject({
      authentication_factors: [expect.objectContaining({ delivery_method: 'sms' })],
    })
    // Logged in, send/secondary attaches a new number to the session's user and texts it.
    const added = await sdkLoginCode(p, '+12025550212', {
      channel: 'sms',
      path: 'send/secondary',
      session: String(data.session_token),
    })
    expect(added.job).toMatchObject({ channel: 'sms' })
    expect(await dbPhone(added.phoneId)).toMatchObject({ user_id: data.user_id, verified: 0 })
  })

  it('refuses what the SMS routes refuse on /v1: autofill without the domain, countries outside the SMS allowlist', async () => {
    const p = await sdkProject({ allowed_countries: ['US', 'GB'] })
    const before = await tableCounts(TABLES, { projectId: p.id })
    const autofill = await sdkCall('POST', '/otps/sms/login_or_create', p, {
      body: { phone_number: '+12025550213', enable_autofill: true },
    })
    expectStytchError(autofill, 400, 'bad_request')
    expect(autofill.headers.get('access-control-allow-origin')).toBe(PAGE_ORIGIN)
    // GB may receive WhatsApp codes here, but SMS keeps its own allowlist (US and CA by default).
    const gb = await sdkCall('POST', '/otps/sms/login_or_create', p, { body: { phone_number: '+447911123456' } })
    expectStytchError(gb, 400, 'invalid_phone_number_country_code')
    expect(await tableCounts(TABLES, { projectId: p.id })).toEqual(before)
  })
})

describe('session and user routes', () => {
  it('sessions/authenticate: the session from the Basic password, extended when asked, a fresh JWT', async () => {
    const p = await sdkProject()
    const login = await sdkLogin(p, '+12025550210', 30)
    const data = dataOf(
      await sdkCall('POST', '/sessions/authenticate', p, {
        session: login.token,
        body: { session_duration_minutes: 90 },
      }),
    )
    expect(data).toEqual({
      request_id: expect.any(String),
      status_code: 200,
      user_id: login.userId,
      user: expect.objectContaining({ user_id: login.userId }),
      session: expect.objectContaining({ user_id: login.userId }),
      session_token: login.token,
      session_jwt: expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/),
    })
    const session = data.session as { expires_at: string }
    expect(Date.parse(session.expires_at)).toBeGreaterThan(Date.now() + 85 * 60_000)
    // The SDK sends {} on its background refresh: nothing changes but last_accessed_at.
    expect(
      dataOf(await sdkCall('POST', '/sessions/authenticate', p, { session: login.token, body: {} })),
    ).toMatchObject({
      session: { expires_at: session.expires_at },
    })
    // Logged out (the public token as password), and a session that does not exist.
    expectStytchError(await sdkCall('POST', '/sessions/authenticate', p, { body: {} }), 401, 'unauthorized_credentials')
    const unknown = 'A'.repeat(44)
    expectStytchError(
      await sdkCall('POST', '/sessions/authenticate', p, { session: unknown, body: {} }),
      404,
      'session_not_found',
    )
  })

  it('users/me: the logged-in user; sessions/revoke (no body) ends the session for the backend too', async () => {
    const p = await sdkProject()
    const login = await sdkLogin(p, '+12025550211')
    const me = dataOf(await sdkCall('GET', '/users/me', p, { session: login.token }))
    expect(me).toMatchObject({
      request_id: expect.any(String),
      status_code: 200,
      user_id: login.userId,
      phone_numbers: [{ phone_id: login.phoneId, phone_number: '+12025550211', verified: true }],
    })
    expectStytchError(await sdkCall('GET', '/users/me', p), 401, 'unauthorized_credentials')

    const revoke = await sdkCall('POST', '/sessions/revoke', p, { session: login.token })
    expect(dataOf(revoke)).toEqual({ request_id: expect.any(String), status_code: 200 })
    expectStytchError(await sessionsAuthenticate(p, { session_token: login.token }), 404, 'session_not_found')
    expectStytchError(await sdkCall('GET', '/users/me', p, { session: login.token }), 404, 'session_not_found')
    expectStytchError(await sdkCall('POST', '/sessions/revoke', p, { session: login.token }), 404, 'session_not_found')
    expectStytchError(await sdkCall('POST', '/sessions/revoke', p), 401, 'unauthorized_credentials')
  })

  it("users/phone_numbers/{id}: removes the user's own number; another user's is 404 and stays", async () => {
    const p = await sdkProject()
    const login = await sdkLogin(p, '+12025550212')
    const second = await sdkLoginCode(p, '+12025550213', { path: 'send/secondary', session: login.token })
    expect(
      (await authenticate(p, { method_id: second.phoneId, code: second.code, session_token: login.token })).status,
    ).toBe(200)
    const other = await backendLogin(p, '+12025550214')

    const refused = await sdkCall('DELETE', `/users/phone_numbers/${other.phoneId}`, p, { session: login.token })
    expectStytchError(refused, 404, 'phone_number_not_found')
    expect(await dbPhone(other.phoneId)).not.toBeNull()

    const data = dataOf(await sdkCall('DELETE', `/users/phone_numbers/${second.phoneId}`, p, { session: login.token }))
    expect(data).toEqual({
      request_id: expect.any(String),
      status_code: 200,
      user_id: login.userId,
      __user: expect.objectContaining({
        user_id: login.userId,
        phone_numbers: [{ phone_id: login.phoneId, phone_number: '+12025550212', verified: true }],
      }),
    })
    expect(await dbPhone(second.phoneId)).toBeNull()
    expectStytchError(
      await sdkCall('DELETE', `/users/phone_numbers/${login.phoneId}`, p),
      401,
      'unauthorized_credentials',
    )
  })
})

describe('what a browser is refused that a backend may do', () => {
  it('no client-supplied attributes, pending users, custom claims, user ids or sessions in the body', async () => {
    const p = await sdkProject()
    const login = await sdkLogin(p, '+12025550220')
    const before = await tableRows(TABLES, { projectId: p.id })
    const refusals: [string, Record<string, unknown>, string, string?][] = [
      [LOGIN, { phone_number: '+12025550221', attributes: { ip_address: '203.0.113.9' } }, 'attributes'],
      [LOGIN, { phone_number: '+12025550221', create_user_as_pending: true }, 'create_user_as_pending'],
      ['/otps/whatsapp/send/primary', { phone_number: '+12025550220', attributes: { user_agent: 'x' } }, 'attributes'],
      [
        '/otps/whatsapp/send/secondary',
        { phone_number: '+12025550222', user_id: login.userId },
        'user_id',
        login.token,
      ],
      ['/otps/whatsapp/send/primary', { phone_number: '+12025550220', session_token: login.token }, 'session_token'],
      [
        '/otps/authenticate',
        { token: '123456', method_id: login.phoneId, session_custom_claims: { admin: true } },
        'session_custom_claims',
      ],
      [
        '/otps/authenticate',
        { token: '123456', method_id: login.phoneId, options: { ip_match_required: true } },
        'options',
      ],
      ['/otps/authenticate', { token: '123456', method_id: login.phoneId, session_jwt: login.jwt }, 'session_jwt'],
      ['/sessions/authenticate', { session_custom_claims: { admin: true } }, 'session_custom_claims', login.token],
      ['/sessions/authenticate', { session_token: login.token }, 'session_token'],
    ]
    for (const [path, body, field, session] of refusals) {
      const res = await sdkCall('POST', path, p, { body, ...(session ? { session } : {}) })
      expectStytchError(res, 400, 'bad_request')
      expect(String(res.body.error_message), `${path} ${field}`).toContain(field)
    }
    expect(await tableRows(TABLES, { projectId: p.id })).toEqual(before)
    // create_user_as_pending: false is simply the default.
    expect(
      (await sdkCall('POST', LOGIN, p, { body: { phone_number: '+12025550221', create_user_as_pending: false } }))
        .status,
    ).toBe(200)
  })

  it("caps session_duration_minutes at the project's sdk_max_session_minutes", async () => {
    const p = await sdkProject({ sdk_max_session_minutes: 60 })
    const { code, phoneId } = await sdkLoginCode(p, '+12025550223')
    const tooLong = await sdkCall('POST', '/otps/authenticate', p, {
      body: { token: code, method_id: phoneId, session_duration_minutes: 61 },
    })
    expectStytchError(tooLong, 400, 'invalid_session_duration')
    expect(tooLong.body.error_message).toContain('sdk_max_session_minutes')
    // Refused before the code was judged: it still works.
    const ok = await sdkCall('POST', '/otps/authenticate', p, {
      body: { token: code, method_id: phoneId, session_duration_minutes: 60 },
    })
    const token = String(dataOf(ok).session_token)
    const extend = await sdkCall('POST', '/sessions/authenticate', p, {
      session: token,
      body: { session_duration_minutes: 600 },
    })
    expectStytchError(extend, 400, 'invalid_session_duration')
    // A backend is not bound by it.
    expect((await sessionsAuthenticate(p, { session_token: token, session_duration_minutes: 600 })).status).toBe(200)
  })

  it('takes the IP from CF-Connecting-IP and the user agent from User-Agent; the per-IP limits see them', async () => {
    const p = await sdkProject({ ip_sends_per_hour: 2 })
    const from = (ip: string) => ({ headers: { 'cf-connecting-ip': ip, 'user-agent': 'Mozilla/5.0 (test)' } })
    const { code, phoneId } = await sdkLoginCode(p, '+12025550224', from('198.51.100.7'))
    await sdkLoginCode(p, '+12025550225', from('198.51.100.7'))
    const third = await sdkCall('POST', LOGIN, p, { body: { phone_number: '+12025550226' }, ...from('198.51.100.7') })
    expectStytchError(third, 429, 'too_many_requests')
    // Another address has its own budget; the browser cannot pick one in the body.
    expect(
      (await sdkCall('POST', LOGIN, p, { body: { phone_number: '+12025550226' }, ...from('198.51.100.8') })).status,
    ).toBe(200)

    const res = await sdkCall('POST', '/otps/authenticate', p, {
      body: { token: code, method_id: phoneId },
      ...from('198.51.100.7'),
    })
    expect((dataOf(res).session as { attributes: unknown }).attributes).toEqual({
      ip_address: '198.51.100.7',
      user_agent: 'Mozilla/5.0 (test)',
    })
  })

  it('applies the per-phone limits as /v1 does', async () => {
    const p = await sdkProject({ phone_send_cooldown_seconds: 30 })
    await sdkLoginCode(p, '+12025550227')
    const again = await sdkCall('POST', LOGIN, p, { body: { phone_number: '+12025550227' } })
    expectStytchError(again, 429, 'too_many_requests')
    expectStytchError(await send(p, { phone_number: '+12025550227' }), 429, 'too_many_requests')
  })
})

describe('HttpOnly mode (sdk_http_only_cookies)', () => {
  const cookiesOf = (headers: Headers) => headers.getSetCookie()

  it('sets both cookies HttpOnly; Secure; SameSite=Lax, leaves the tokens out, and reads the session from them', async () => {
    const p = await sdkProject({ sdk_http_only_cookies: true, sdk_cookie_domain: 'example.com' })
    const { code, phoneId } = await sdkLoginCode(p, '+12025550230')
    const res = await sdkCall('POST', '/otps/authenticate', p, {
      body: { token: code, method_id: phoneId, session_duration_minutes: 60 },
    })
    const data = dataOf(res)
    expect(data).not.toHaveProperty('session_token')
    expect(data).not.toHaveProperty('session_jwt')
    const cookies = cookiesOf(res.headers)
    expect(cookies).toHaveLength(2)
    const expires = new Date((data.session as { expires_at: string }).expires_at).toUTCString()
    for (const [name, value] of [
      ['stytch_session', /^[A-Za-z0-9_-]{44}$/],
      ['stytch_session_jwt', /^[\w-]+\.[\w-]+\.[\w-]+$/],
    ] as const) {
      const cookie = cookies.find((c) => c.startsWith(`${name}=`)) ?? ''
      const [pair = '', ...attributes] = cookie.split('; ')
      expect(pair.slice(name.length + 1)).toMatch(value)
      expect(attributes.sort()).toEqual(
        ['Domain=example.com', `Expires=${expires}`, 'HttpOnly', 'Path=/', 'SameSite=Lax', 'Secure'].sort(),
      )
    }
    const cookieHeader = cookies.map((c) => c.split('; ')[0]).join('; ')
    const token = (cookies[0] ?? '').split('; ')[0]?.split('=')[1] ?? ''
    // The SDK cannot read the cookies, so it sends the public token twice; the cookie names the session.
    const me = await sdkCall('GET', '/users/me', p, { headers: { cookie: cookieHeader } })
    expect(dataOf(me).user_id).toBe(data.user_id)
    const refreshed = await sdkCall('POST', '/sessions/authenticate', p, {
      headers: { cookie: cookieHeader },
      body: {},
    })
    expect(dataOf(refreshed)).not.toHaveProperty('session_token')
    expect(
      cookiesOf(refreshed.headers)
        .map((c) => c.split('=')[0])
        .sort(),
    ).toEqual(['stytch_session', 'stytch_session_jwt'])
    // The JWT cookie alone names the session too.
    const jwtOnly = cookies.find((c) => c.startsWith('stytch_session_jwt='))?.split('; ')[0] ?? ''
    expect((await sdkCall('GET', '/users/me', p, { headers: { cookie: jwtOnly } })).status).toBe(200)

    // Sign-out revokes the session and clears both cookies.
    const revoke = await sdkCall('POST', '/sessions/revoke', p, { headers: { cookie: cookieHeader } })
    expect(revoke.status).toBe(200)
    const cleared = cookiesOf(revoke.headers)
    expect(cleared.map((c) => c.split('=')[0]).sort()).toEqual(['stytch_session', 'stytch_session_jwt'])
    for (const c of cleared) expect(c).toMatch(/Max-Age=0/)
    expectStytchError(await sessionsAuthenticate(p, { session_token: token }), 404, 'session_not_found')
    // A dead session's cookies are cleared on the next call that presents them.
    const dead = await sdkCall('GET', '/users/me', p, { headers: { cookie: cookieHeader } })
    expectStytchError(dead, 404, 'session_not_found')
    expect(cookiesOf(dead.headers).every((c) => /Max-Age=0/.test(c))).toBe(true)
    expect(cookiesOf(dead.headers)).toHaveLength(2)
  })

  it('without it, cookies are never read and tokens stay in the body', async () => {
    const p = await sdkProject()
    const login = await sdkLogin(p, '+12025550231')
    expect(cookiesOf(login.headers)).toEqual([])
    const me = await sdkCall('GET', '/users/me', p, { headers: { cookie: `stytch_session=${login.token}` } })
    expectStytchError(me, 401, 'unauthorized_credentials')
  })
})

describe('the backend API is unchanged by the SDK routes', () => {
  it('a backend may still pass attributes and pending users on /v1', async () => {
    const p = await sdkProject()
    const res = await callJson('POST', '/v1/otps/whatsapp/login_or_create', {
      project: p,
      body: { phone_number: '+12025550240', create_user_as_pending: true, attributes: { ip_address: '203.0.113.1' } },
    })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ user_created: true })
  })
})
