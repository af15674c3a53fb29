import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import { MAX_BODY_BYTES } from '../src/middleware/validate'
import { call, callJson, expectStytchError, loginOrCreate, newProject, TEST_PROJECT } from './helpers'

const PATH = '/v1/otps/whatsapp/login_or_create'
const VALID = { phone_number: '+12025550150' }

describe('project authentication', () => {
  const basic = (text: string) => `Basic ${btoa(text)}`
  const cases: [string, Record<string, string> | null][] = [
    ['no Authorization header', null],
    ['a Bearer token', { authorization: 'Bearer abc' }],
    ['Basic with invalid base64', { authorization: 'Basic !!!' }],
    ['Basic without a colon', { authorization: basic(TEST_PROJECT.id) }],
    ['an empty secret', { authorization: basic(`${TEST_PROJECT.id}:`) }],
    ['a wrong secret', { authorization: basic(`${TEST_PROJECT.id}:secret-test-wrong`) }],
    [
      'a secret differing in the last character',
      { authorization: basic(`${TEST_PROJECT.id}:${TEST_PROJECT.secret.slice(0, -1)}1`) },
    ],
    [
      'an unknown project',
      { authorization: basic(`project-test-11111111-1111-4111-8111-111111111111:${TEST_PROJECT.secret}`) },
    ],
    ['a malformed project id', { authorization: basic(`project-xyz:${TEST_PROJECT.secret}`) }],
    [
      'the test project id relabelled live',
      { authorization: basic(`${TEST_PROJECT.id.replace('-test-', '-live-')}:${TEST_PROJECT.secret}`) },
    ],
    ['an oversized header', { authorization: `Basic ${'A'.repeat(4_000)}` }],
  ]
  it.each(cases)('rejects %s with 401 unauthorized_credentials', async (_name, headers) => {
    const res = await callJson('POST', PATH, { body: VALID, project: null, headers: headers ?? {} })
    expectStytchError(res, 401, 'unauthorized_credentials')
  })

  it('accepts another project with its own secret and not with the local one', async () => {
    const other = await newProject('live')
    expect((await loginOrCreate(VALID, { project: other })).status).toBe(200)
    const mixed = await loginOrCreate(VALID, { project: { id: other.id, secret: TEST_PROJECT.secret } })
    expectStytchError(mixed, 401, 'unauthorized_credentials')
    expect(mixed.body.request_id).toMatch(/^request-id-live-/)
  })

  it('checks credentials before the body', async () => {
    const res = await callJson('POST', PATH, {
      rawBody: '{',
      project: null,
      headers: { 'content-type': 'application/json' },
    })
    expectStytchError(res, 401, 'unauthorized_credentials')
  })

  it('does not query D1 for the project once the isolate is warm', async () => {
    await loginOrCreate(VALID)
    const spy = vi.spyOn(env.DB, 'prepare')
    await callJson('POST', PATH, { body: { phone_number: 'bad' } })
    expect(spy).not.toHaveBeenCalled()
    spy.mockRestore()
  })
})

describe('every failure is a Stytch-shaped JSON error', () => {
  it('answers malformed JSON with 400 bad_request', async () => {
    const res = await callJson('POST', PATH, {
      rawBody: '{"phone_number": ',
      headers: { 'content-type': 'application/json' },
    })
    expectStytchError(res, 400, 'bad_request')
  })

  it.each([['[]'], ['"text"'], ['null'], ['42']])('answers the non-object JSON body %s with 400', async (raw) => {
    const res = await callJson('POST', PATH, { rawBody: raw, headers: { 'content-type': 'application/json' } })
    expectStytchError(res, 400, 'bad_request')
  })

  it.each([['text/plain'], ['application/x-www-form-urlencoded'], ['']])(
    'answers content type "%s" with 415',
    async (type) => {
      const headers: Record<string, string> = type ? { 'content-type': type } : {}
      const res = await callJson('POST', PATH, { rawBody: JSON.stringify(VALID), headers })
      expectStytchError(res, 415, 'unsupported_media_type')
    },
  )

  it('accepts a charset parameter on the JSON content type', async () => {
    const res = await call('POST', PATH, {
      rawBody: JSON.stringify(VALID),
      headers: { 'content-type': 'application/json; charset=utf-8' },
    })
    expect(res.status).toBe(200)
  })

  it('answers an oversized body with 413', async () => {
    const body = JSON.stringify({ ...VALID, padding: 'x'.repeat(MAX_BODY_BYTES) })
    const res = await callJson('POST', PATH, { rawBody: body, headers: { 'content-type': 'application/json' } })
    expectStytchError(res, 413, 'request_too_large')
  })

  it('answers an unknown route with 404 route_not_found, with or without credentials', async () => {
    expectStytchError(await callJson('GET', '/nope'), 404, 'route_not_found')
    expectStytchError(await callJson('POST', '/v1/otps/email/send', { body: VALID }), 404, 'route_not_found')
    expectStytchError(await callJson('GET', '/', { project: null }), 404, 'route_not_found')
  })

  it('answers a wrong method with 405 and an Allow header', async () => {
    const res = await callJson('GET', PATH)
    expectStytchError(res, 405, 'method_not_allowed')
    expect(res.headers.get('allow')).toContain('POST')
  })

  it('answers an unexpected exception with a generic 500 and logs the details', async () => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => {})
    const broken: Env = {
      ...env,
      DB: new Proxy(env.DB, {
        get(target, prop, receiver) {
          if (prop === 'batch') return () => Promise.reject(new Error('D1 is down: secret-internal-detail'))
          const value = Reflect.get(target, prop, receiver)
          return typeof value === 'function' ? value.bind(target) : value
        },
      }),
    }
    const res = await callJson('POST', PATH, { body: { phone_number: '+12025550151' }, env: broken })
    const body = expectStytchError(res, 500, 'internal_server_error')
    expect(JSON.stringify(body)).not.toContain('secret-internal-detail')
    expect(log).toHaveBeenCalled()
    expect(String(log.mock.calls[0]?.[0])).toContain('secret-internal-detail')
    log.mockRestore()
  })

  it('sets no-store on replies', async () => {
    const res = await call('POST', PATH, { body: VALID })
    expect(res.headers.get('cache-control')).toBe('no-store')
  })
})

describe('GET /health', () => {
  it('answers without credentials or storage', async () => {
    const spy = vi.spyOn(env.DB, 'prepare')
    const res = await callJson('GET', '/health', { project: null })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ request_id: expect.stringMatching(/^request-id-test-/), status: 'ok', status_code: 200 })
    expect(spy).not.toHaveBeenCalled()
    spy.mockRestore()
  })
})
