import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { call, callJson, expectStytchError, TEST_PROJECT, tableCounts } from './helpers'
import { capturedLines } from './log-capture'
import { dataOf, PAGE_ORIGIN, sdkCall, sdkHeaders, sdkProject } from './sdk-helpers'

// Who may call /sdk/v1: the public token (and only it), from an origin the project authorizes, with
// the CORS headers the SDK needs on every reply; and the routes that need no credentials.

const TABLES = ['users', 'phones', 'otp_codes', 'deliveries', 'sessions'] as const
const LOGIN = '/otps/whatsapp/login_or_create'

describe('public tokens', () => {
  it('authenticate /sdk/v1 only; a project secret is refused there, a public token on /v1', async () => {
    const p = await sdkProject()
    expect(dataOf(await sdkCall('POST', LOGIN, p, { body: { phone_number: '+12025550101' } })).method_id).toMatch(
      /^phone-number-test-/,
    )

    // The project's secret in the SDK's place.
    const withSecret = await callJson('POST', `/sdk/v1${LOGIN}`, {
      project: p,
      headers: { origin: PAGE_ORIGIN },
      body: { phone_number: '+12025550102' },
    })
    expectStytchError(withSecret, 401, 'unauthorized_credentials')
    // The public token in a backend's place (as user name, and as the password of the project id).
    for (const authorization of [
      `Basic ${btoa(`${p.publicToken}:${p.publicToken}`)}`,
      `Basic ${btoa(`${p.id}:${p.publicToken}`)}`,
    ]) {
      const res = await callJson('POST', '/v1/otps/whatsapp/login_or_create', {
        project: null,
        headers: { authorization },
        body: { phone_number: '+12025550103' },
      })
      expectStytchError(res, 401, 'unauthorized_credentials')
    }
    expect(await tableCounts(['phones'], { projectId: p.id })).toEqual({ phones: 1 })
  })

  it('refuses an unknown token, a malformed one and a malformed session password', async () => {
    const p = await sdkProject()
    const unknown = await sdkCall('GET', '/users/me', { publicToken: `public-token-test-${crypto.randomUUID()}` })
    expectStytchError(unknown, 401, 'unauthorized_credentials')
    // A mistyped test token still shows a local page its real error (CORS headers set)…
    expect(unknown.headers.get('access-control-allow-origin')).toBe(PAGE_ORIGIN)
    // …and nothing else that names no project does.
    const live = await sdkCall('GET', '/users/me', { publicToken: `public-token-live-${crypto.randomUUID()}` })
    expectStytchError(live, 401, 'unauthorized_credentials')
    expect(live.headers.get('access-control-allow-origin')).toBeNull()
    expectStytchError(
      await sdkCall('GET', '/users/me', { publicToken: 'public-token-x' }),
      401,
      'unauthorized_credentials',
    )
    expectStytchError(
      await sdkCall('GET', '/users/me', p, { session: 'not a token!' }),
      401,
      'unauthorized_credentials',
    )
    const none = await callJson('GET', '/sdk/v1/users/me', { project: null, headers: { origin: PAGE_ORIGIN } })
    expectStytchError(none, 401, 'unauthorized_credentials')
    expect(none.headers.get('access-control-allow-origin')).toBeNull()
  })

  it('a rotated token: the new one works at once, the old one is refused', async () => {
    const p = await sdkProject()
    expect((await sdkCall('GET', `/projects/bootstrap/${p.publicToken}`, p)).status).toBe(200)
    const rotated = `public-token-test-${crypto.randomUUID()}`
    await env.DB.prepare('UPDATE projects SET public_token = ?1 WHERE id = ?2').bind(rotated, p.id).run()

    // No cache is cleared: the isolate still holds the project read with the old token.
    expect(dataOf(await sdkCall('GET', `/projects/bootstrap/${rotated}`, { publicToken: rotated })).project_name).toBe(
      'test',
    )
    expectStytchError(await sdkCall('GET', `/projects/bootstrap/${p.publicToken}`, p), 401, 'unauthorized_credentials')
  })

  it('the local project has the documented public token', async () => {
    const res = await sdkCall('GET', `/projects/bootstrap/${TEST_PROJECT.publicToken}`, {
      publicToken: 'public-token-test-00000000-0000-4000-8000-000000000000',
    })
    expect(dataOf(res).project_name).toBe('test')
  })
})

describe('origins and CORS', () => {
  it('answers a preflight with the SDK’s methods and headers for the requesting origin', async () => {
    const res = await call('OPTIONS', `/sdk/v1${LOGIN}`, {
      project: null,
      headers: {
        origin: 'https://app.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type,x-sdk-client,x-sdk-parent-host',
      },
    })
    expect(res.status).toBe(204)
    expect(Object.fromEntries(res.headers)).toMatchObject({
      'access-control-allow-origin': 'https://app.example.com',
      'access-control-allow-credentials': 'true',
      'access-control-allow-methods': 'GET, POST, DELETE',
      'access-control-allow-headers': 'Authorization, Content-Type, X-SDK-Client, X-SDK-Parent-Host',
      'access-control-max-age': '7200',
      vary: 'Origin',
    })
    expect(res.headers.get('access-control-allow-origin')).not.toBe('*')
  })

  it('puts the CORS headers on successes and errors for an authorized origin', async () => {
    const p = await sdkProject({ sdk_authorized_origins: ['https://app.example.com'] })
    for (const origin of [
      'https://app.example.com',
      'http://localhost:5173',
      'http://127.0.0.1:8080',
      'http://localhost',
    ]) {
      const ok = await sdkCall('POST', LOGIN, p, { origin, body: { phone_number: '+12025550111' } })
      expect(ok.status).toBe(200)
      expect(ok.headers.get('access-control-allow-origin')).toBe(origin)
      expect(ok.headers.get('access-control-allow-credentials')).toBe('true')
      expect(ok.headers.get('vary')).toContain('Origin')
      const bad = await sdkCall('POST', LOGIN, p, { origin, body: { phone_number: '12345' } })
      expectStytchError(bad, 400, 'invalid_phone_number')
      expect(bad.headers.get('access-control-allow-origin')).toBe(origin)
      expect(bad.headers.get('access-control-allow-credentials')).toBe('true')
    }
  })

  it('refuses any other origin with 403 origin_not_authorized, no CORS headers and no write', async () => {
    const p = await sdkProject({ sdk_authorized_origins: ['https://app.example.com'] })
    const before = await tableCounts(TABLES, { projectId: p.id })
    for (const origin of [
      'https://evil.example',
      'https://app.example.com:8443',
      'http://app.example.com',
      'https://localhost:3000',
      'http://localhost.evil.example',
      'null',
    ]) {
      const res = await sdkCall('POST', LOGIN, p, { origin, body: { phone_number: '+12025550112' } })
      expectStytchError(res, 403, 'origin_not_authorized')
      expect(res.headers.get('access-control-allow-origin'), origin).toBeNull()
      expect(res.headers.get('access-control-allow-credentials')).toBeNull()
    }
    // A request naming no page (not a browser) is refused too.
    const none = await sdkCall('POST', LOGIN, p, { origin: null, body: { phone_number: '+12025550112' } })
    expectStytchError(none, 403, 'origin_not_authorized')
    expect(await tableCounts(TABLES, { projectId: p.id })).toEqual(before)
  })

  it("takes a same-origin GET's own origin (a browser sends no Origin header there)", async () => {
    const p = await sdkProject({ sdk_authorized_origins: ['http://localhost'] }, 'live')
    const headers = sdkHeaders(p, { origin: null, headers: { 'sec-fetch-site': 'same-origin' } })
    const res = await callJson('GET', `/sdk/v1/projects/bootstrap/${p.publicToken}`, { project: null, headers })
    expect(res.status).toBe(200)
    const cross = sdkHeaders(p, { origin: null, headers: { 'sec-fetch-site': 'cross-site' } })
    const refused = await callJson('GET', `/sdk/v1/projects/bootstrap/${p.publicToken}`, {
      project: null,
      headers: cross,
    })
    expectStytchError(refused, 403, 'origin_not_authorized')
  })

  it('a live project: off until origins are set, then only those (no local pages)', async () => {
    const bare = await sdkProject({}, 'live')
    const off = await sdkCall('POST', LOGIN, bare, { body: { phone_number: '+12025550113' } })
    expectStytchError(off, 403, 'origin_not_authorized')
    expect(off.body.error_message).toContain('sdk_authorized_origins')
    expect(off.body.error_message).toContain('npm run project:update')
    expect(off.body.request_id).toMatch(/^request-id-live-/)

    const p = await sdkProject({ sdk_authorized_origins: ['https://app.example.com'] }, 'live')
    const ok = await sdkCall('POST', LOGIN, p, {
      origin: 'https://app.example.com',
      body: { phone_number: '+12025550113' },
    })
    expect(dataOf(ok).method_id).toMatch(/^phone-number-live-/)
    const local = await sdkCall('POST', LOGIN, p, { origin: PAGE_ORIGIN, body: { phone_number: '+12025550113' } })
    expectStytchError(local, 403, 'origin_not_authorized')
  })

  it('sdk_enabled false switches the SDK off (401 endpoint_not_authorized_for_sdk)', async () => {
    const p = await sdkProject({ sdk_enabled: false })
    const res = await sdkCall('POST', LOGIN, p, { body: { phone_number: '+12025550114' } })
    expectStytchError(res, 401, 'endpoint_not_authorized_for_sdk')
    expect(res.body.error_message).toContain('sdk_enabled')
    expect(await tableCounts(['users'], { projectId: p.id })).toEqual({ users: 0 })
  })
})

describe('routes the SDK may not use', () => {
  it('answer 401 endpoint_not_authorized_for_sdk, with the CORS headers', async () => {
    const p = await sdkProject()
    for (const [method, path] of [
      ['POST', '/otps/email/login_or_create'],
      ['POST', '/magic_links/email/login_or_create'],
      ['PUT', '/users/me'],
      ['GET', '/otps/authenticate'],
      ['POST', '/users/search'],
      ['GET', '/nothing/here'],
    ] as const) {
      const res = await sdkCall(method, path, p, method === 'GET' ? {} : { body: {} })
      expectStytchError(res, 401, 'endpoint_not_authorized_for_sdk')
      expect(res.headers.get('access-control-allow-origin'), path).toBe(PAGE_ORIGIN)
    }
  })
})

describe('POST /sdk/v1/events', () => {
  it('accepts the telemetry batch without credentials, stores and logs nothing', async () => {
    const before = await tableCounts(TABLES)
    const linesBefore = capturedLines().length
    const batch = [
      {
        telemetry: { event_id: 'event-id-1', app: { identifier: 'localhost' } },
        event: { public_token: 'public-token-test-x', event_name: 'sdk_instance_instantiated', details: {} },
      },
    ]
    const res = await callJson('POST', '/sdk/v1/events', {
      project: null,
      headers: { origin: PAGE_ORIGIN },
      body: batch,
    })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ data: { request_id: expect.any(String), status_code: 200 } })
    expect(res.headers.get('access-control-allow-origin')).toBe(PAGE_ORIGIN)
    expect(capturedLines().length).toBe(linesBefore)
    expect(await tableCounts(TABLES)).toEqual(before)
    // Whatever the body is: it is never read.
    const junk = await call('POST', '/sdk/v1/events', { project: null, rawBody: 'not json' })
    expect(junk.status).toBe(200)
  })
})

describe('the phone-number frame', () => {
  it('serves its page with a strict CSP and no frame restriction', async () => {
    const res = await call('GET', '/clientside-services/index.html', { project: null })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/html/)
    const csp = res.headers.get('content-security-policy') ?? ''
    expect(csp).toMatch(/^default-src 'none'; script-src 'sha256-[A-Za-z0-9+/]+=*'; connect-src 'self'/)
    expect(csp).not.toContain('frame-ancestors')
    expect(res.headers.get('x-frame-options')).toBeNull()
    const html = await res.text()
    expect(html).toContain("addEventListener('message'")
    // The CSP hash is the hash of the one inline script.
    const script = /<script>([\s\S]*)<\/script>/.exec(html)?.[1] ?? ''
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(script)))
    expect(csp).toContain(`'sha256-${btoa(String.fromCharCode(...digest))}'`)
  })

  it('parses numbers as typed, as the prebuilt UI asks', async () => {
    const parse = (body: unknown) =>
      callJson('POST', '/clientside-services/phone_numbers/parse', { project: null, body })
    expect((await parse({ phoneNumber: '2025550143', regionCode: 'US' })).body).toEqual({
      isValid: true,
      number: '+12025550143',
      national: '(202) 555-0143',
    })
    expect((await parse({ phoneNumber: '+12025550143' })).body).toEqual({
      isValid: true,
      number: '+12025550143',
      national: '(202) 555-0143',
    })
    expect((await parse({ phoneNumber: '07400 123456', regionCode: 'GB' })).body).toMatchObject({
      isValid: true,
      number: '+447400123456',
    })
    const partial = await parse({ phoneNumber: '20255', regionCode: 'US' })
    expect(partial.body).toEqual({ isValid: false, number: '+120255', national: '20255' })
    expect((await parse({ phoneNumber: '123', regionCode: 'ZZ' })).body).toMatchObject({ isValid: false })
    expectStytchError(await parse({ regionCode: 'US' }), 400, 'bad_request')
  })

  it('gives example numbers for the placeholder', async () => {
    const example = (region: string) =>
      callJson('GET', `/clientside-services/phone_numbers/example?regionCode=${region}`, { project: null })
    expect((await example('US')).body).toEqual({ phoneNumber: '(201) 555-0123' })
    expect((await example('FR')).body).toEqual({ phoneNumber: '06 12 34 56 78' })
    expect((await example('ZZ')).body).toEqual({})
    expectStytchError(await example('usa'), 400, 'bad_request')
  })
})
