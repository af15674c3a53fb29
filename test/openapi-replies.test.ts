import { env } from 'cloudflare:workers'
import { beforeAll, describe, expect, it } from 'vitest'
import { ROUTES } from '../src/openapi/routes'
import { type CallOptions, call, callJson, newProject, type TestProject } from './helpers'
import { expectDocumentedReply, expectDocumentedRequest, fetchDocument, type Json } from './openapi-helpers'
import { loginCode, project, wrong } from './otp-helpers'
import { type SdkProject, sdkHeaders } from './sdk-helpers'
import { messageSid, signTwilio, TWILIO_CALLBACK } from './sms-helpers'
import { signWebhook, statusPayload } from './whatsapp-helpers'

// Real replies of every route, successes and errors, checked against the served OpenAPI document:
// a field the handler adds, drops or types differently, or an error type the document does not list
// for that route and status, fails here.

let doc: Json
let p: TestProject
const succeeded = new Set<string>()

beforeAll(async () => {
  doc = await fetchDocument()
  p = await project()
})

/** Calls a route and checks the reply (and, for an accepted call, the request) against the document. */
async function check(
  method: string,
  honoPath: string,
  path: string,
  options: CallOptions = {},
): Promise<{ status: number; body: Json }> {
  const res = await call(method, path, { project: p, ...options })
  const text = await res.text()
  const body: unknown = res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : text
  expectDocumentedReply(doc, method, honoPath, { status: res.status, headers: res.headers, body })
  if (res.status === 200) {
    succeeded.add(`${method.toLowerCase()} ${honoPath}`)
    if (options.body !== undefined) expectDocumentedRequest(doc, method, honoPath, options.body)
  }
  return { status: res.status, body: typeof body === 'object' && body !== null ? (body as Json) : { text: body } }
}

const LOGIN = '/v1/otps/whatsapp/login_or_create'
const SEND = '/v1/otps/whatsapp/send'
const AUTH = '/v1/otps/authenticate'
const uuid = () => crypto.randomUUID()

describe('real replies match the OpenAPI document', () => {
  it('POST login_or_create: success and its errors', async () => {
    const full = {
      phone_number: '+12025550301',
      expiration_minutes: 5,
      locale: 'pt-br',
      create_user_as_pending: true,
      attributes: { ip_address: '203.0.113.7', user_agent: 'openapi-test' },
    }
    expect((await check('POST', LOGIN, LOGIN, { body: full })).status).toBe(200)
    expect((await check('POST', LOGIN, LOGIN, { body: { phone_number: '+12025550301', locale: null } })).status).toBe(
      200,
    )
    const defaults = await newProject('test')
    const bad: [unknown, number, string, CallOptions?][] = [
      [{ phone_number: '12345' }, 400, 'invalid_phone_number'],
      [{}, 400, 'bad_request'],
      [{ phone_number: '+12025550301', expiration_minutes: 11 }, 400, 'invalid_expiration_otp'],
      [{ phone_number: '+12025550301', locale: 'xx' }, 400, 'invalid_locale'],
      [{ phone_number: '+12025550301', attributes: { ip_address: 'nope' } }, 400, 'invalid_ip_address'],
      [{ phone_number: '+442071838750' }, 400, 'invalid_phone_number_country_code', { project: defaults }],
      [{ phone_number: '+12025550301' }, 401, 'unauthorized_credentials', { project: { id: p.id, secret: 'wrong' } }],
      [{ phone_number: '+12025550301' }, 415, 'unsupported_media_type', { headers: { 'content-type': 'text/plain' } }],
    ]
    for (const [body, status, type, options] of bad) {
      const res = await check('POST', LOGIN, LOGIN, { body, ...options })
      expect([res.status, res.body.error_type]).toEqual([status, type])
    }
    const large = await check('POST', LOGIN, LOGIN, {
      rawBody: JSON.stringify({ pad: 'x'.repeat(20_000) }),
      headers: { 'content-type': 'application/json' },
    })
    expect(large.status).toBe(413)
  })

  it('POST send and authenticate: successes, sessions and errors', async () => {
    const { phoneId, userId, code } = await loginCode(p, '+12025550302')
    const wrongCode = await check('POST', AUTH, AUTH, { body: { method_id: phoneId, code: wrong(code) } })
    expect(wrongCode.body.error_type).toBe('otp_code_not_found')
    const ok = await check('POST', AUTH, AUTH, { body: { method_id: phoneId, code, session_duration_minutes: 60 } })
    expect(ok.status).toBe(200)
    const reused = await check('POST', AUTH, AUTH, { body: { method_id: phoneId, code } })
    expect(reused.body.error_type).toBe('unable_to_auth_otp_code')
    const badId = await check('POST', AUTH, AUTH, { body: { method_id: 'nope', code } })
    expect(badId.body.error_type).toBe('invalid_method_id')
    const unknown = await check('POST', AUTH, AUTH, { body: { method_id: `phone-number-test-${uuid()}`, code } })
    expect(unknown.status).toBe(404)

    expect((await check('POST', SEND, SEND, { body: { phone_number: '+12025550302', locale: 'es' } })).status).toBe(200)
    const second = await loginCode(p, '+12025550302')
    expect((await check('POST', AUTH, AUTH, { body: { method_id: second.phoneId, code: second.code } })).status).toBe(
      200,
    )
    const attach = await check('POST', SEND, SEND, { body: { phone_number: '+12025550303', user_id: userId } })
    expect(attach.status).toBe(200)
    const nobody = await check('POST', SEND, SEND, { body: { phone_number: '+12025550304' } })
    expect(nobody.body.error_type).toBe('phone_number_not_found')
    const noUser = await check('POST', SEND, SEND, {
      body: { phone_number: '+12025550305', user_id: `user-test-${uuid()}` },
    })
    expect(noUser.body.error_type).toBe('user_not_found')
  })

  it('POST sms/login_or_create and sms/send: successes and their errors', async () => {
    const SMS_LOGIN = '/v1/otps/sms/login_or_create'
    const SMS_SEND = '/v1/otps/sms/send'
    const full = { phone_number: '+12025550391', locale: 'es', expiration_minutes: 4, enable_autofill: false }
    expect((await check('POST', SMS_LOGIN, SMS_LOGIN, { body: full })).status).toBe(200)
    expect((await check('POST', SMS_SEND, SMS_SEND, { body: { phone_number: '+12025550391' } })).status).toBe(200)
    const autofill = await check('POST', SMS_LOGIN, SMS_LOGIN, {
      body: { phone_number: '+12025550392', enable_autofill: true },
    })
    expect(autofill.body.error_type).toBe('bad_request')
    const noSms = { ...env, SMS_PROVIDER: 'none' } as Env
    for (const path of [SMS_LOGIN, SMS_SEND]) {
      const res = await check('POST', path, path, { body: { phone_number: '+12025550393' }, env: noSms })
      expect(res.body.error_type).toBe('service_unavailable')
    }
    const nobody = await check('POST', SMS_SEND, SMS_SEND, { body: { phone_number: '+12025550394' } })
    expect(nobody.body.error_type).toBe('phone_number_not_found')
  })

  it('Users API: get, delete a phone number, delete a user, and their errors', async () => {
    const { userId, phoneId } = await loginCode(p, '+12025550306')
    await loginCode(p, '+12025550307')
    expect((await check('GET', '/v1/users/:user_id', `/v1/users/${userId}`)).status).toBe(200)
    const missing = await check('GET', '/v1/users/:user_id', `/v1/users/user-test-${uuid()}`)
    expect(missing.body.error_type).toBe('user_not_found')
    const malformed = await check('GET', '/v1/users/:user_id', '/v1/users/user-test-nope')
    expect(malformed.body.error_type).toBe('invalid_user_id')
    const phonePath = '/v1/users/phone_numbers/:phone_id'
    expect((await check('DELETE', phonePath, `/v1/users/phone_numbers/${phoneId}`)).status).toBe(200)
    expect((await check('DELETE', phonePath, `/v1/users/phone_numbers/${phoneId}`)).status).toBe(404)
    expect((await check('DELETE', phonePath, '/v1/users/phone_numbers/nope')).status).toBe(400)
    expect((await check('DELETE', '/v1/users/:user_id', `/v1/users/${userId}`)).status).toBe(200)
    expect((await check('DELETE', '/v1/users/:user_id', `/v1/users/${userId}`)).status).toBe(404)
  })

  it('Users API: create, update, search, exchange the number, delete the external id, and their errors', async () => {
    const create = await check('POST', '/v1/users', '/v1/users', {
      body: {
        phone_number: '+12025550310',
        name: { first_name: 'Ada' },
        trusted_metadata: { plan: 'pro' },
        external_id: 'openapi-ada',
      },
    })
    expect(create.status).toBe(200)
    const taken = await check('POST', '/v1/users', '/v1/users', { body: { phone_number: '+12025550310' } })
    expect(taken.body.error_type).toBe('duplicate_phone_number')
    const sameExternal = await check('POST', '/v1/users', '/v1/users', {
      body: { phone_number: '+12025550311', external_id: 'openapi-ada' },
    })
    expect(sameExternal.body.error_type).toBe('duplicate_user_external_id')
    const big = { blob: 'x'.repeat(5_000) }
    const tooBig = await check('POST', '/v1/users', '/v1/users', {
      body: { phone_number: '+12025550311', untrusted_metadata: big },
    })
    expect(tooBig.body.error_type).toBe('metadata_too_large')

    const put = '/v1/users/:user_id'
    const updated = await check('PUT', put, '/v1/users/openapi-ada', {
      body: { untrusted_metadata: { theme: 'dark' } },
    })
    expect(updated.status).toBe(200)
    expect((await check('PUT', put, `/v1/users/user-test-${uuid()}`, { body: {} })).body.error_type).toBe(
      'user_not_found',
    )
    const search = await check('POST', '/v1/users/search', '/v1/users/search', {
      body: {
        limit: 1,
        query: { operator: 'AND', operands: [{ filter_name: 'phone_number', filter_value: ['+12025550310'] }] },
      },
    })
    expect(search.status).toBe(200)
    const badSearch = await check('POST', '/v1/users/search', '/v1/users/search', { body: { limit: 0 } })
    expect(badSearch.body.error_type).toBe('bad_request')

    const exchange = '/v1/users/:user_id/exchange_primary_factor'
    const exchanged = await check('PUT', exchange, '/v1/users/openapi-ada/exchange_primary_factor', {
      body: { phone_number: '+12025550312' },
    })
    expect(exchanged.status).toBe(200)
    const noFields = await check('PUT', exchange, '/v1/users/openapi-ada/exchange_primary_factor', { body: {} })
    expect(noFields.body.error_type).toBe('invalid_exchange_primary_factor_fields')

    const external = '/v1/users/:user_id/external_id'
    expect((await check('DELETE', external, '/v1/users/openapi-ada/external_id')).status).toBe(200)
    expect((await check('DELETE', external, '/v1/users/openapi-ada/external_id')).body.error_type).toBe(
      'user_not_found',
    )
  })

  it('Sessions API: list, authenticate, revoke, JWKS, and their errors', async () => {
    const { phoneId, code, userId } = await loginCode(p, '+12025550308')
    const started = await callJson('POST', AUTH, {
      project: p,
      body: { method_id: phoneId, code, session_duration_minutes: 30 },
    })
    expect(started.status).toBe(200)
    const token = String(started.body.session_token)
    const jwt = String(started.body.session_jwt)
    expect((await check('GET', '/v1/sessions', `/v1/sessions?user_id=${userId}`)).status).toBe(200)
    expect((await check('GET', '/v1/sessions', '/v1/sessions?user_id=user-test-nope')).status).toBe(400)
    expect((await check('GET', '/v1/sessions', `/v1/sessions?user_id=user-test-${uuid()}`)).status).toBe(404)
    const SA = '/v1/sessions/authenticate'
    expect(
      (await check('POST', SA, SA, { body: { session_token: token, session_custom_claims: { a: 1 } } })).status,
    ).toBe(200)
    expect((await check('POST', SA, SA, { body: { session_jwt: jwt } })).status).toBe(200)
    expect((await check('POST', SA, SA, { body: {} })).body.error_type).toBe('no_session_arguments')
    expect((await check('POST', SA, SA, { body: { session_token: 'x'.repeat(44) } })).body.error_type).toBe(
      'session_not_found',
    )
    const jwks = `/v1/sessions/jwks/${p.id}`
    expect((await check('GET', '/v1/sessions/jwks/:project_id', jwks, { project: null })).status).toBe(200)
    const SR = '/v1/sessions/revoke'
    expect((await check('POST', SR, SR, { body: { session_token: token } })).status).toBe(200)
    expect((await check('POST', SR, SR, { body: { session_token: token } })).body.error_type).toBe('session_not_found')
    expect((await check('POST', SR, SR, { body: {} })).body.error_type).toBe('no_session_revoke_arguments')
  })

  it('webhooks, health, the document itself and the dev outbox', async () => {
    const hook = '/v1/webhooks/whatsapp'
    const query = {
      'hub.mode': 'subscribe',
      'hub.challenge': '1158201444',
      'hub.verify_token': env.WHATSAPP_VERIFY_TOKEN,
    }
    const handshake = await check('GET', hook, `${hook}?${new URLSearchParams(query)}`, { project: null })
    expect(handshake.body).toEqual({ text: '1158201444' })
    const refused = { ...query, 'hub.verify_token': 'wrong' }
    expect((await check('GET', hook, `${hook}?${new URLSearchParams(refused)}`, { project: null })).status).toBe(403)
    const payload = JSON.stringify(statusPayload([{ id: 'wamid.unknown', status: 'delivered' }]))
    const signed = { 'content-type': 'application/json', 'x-hub-signature-256': await signWebhook(payload) }
    expect((await check('POST', hook, hook, { project: null, rawBody: payload, headers: signed })).status).toBe(200)
    const unsigned = { 'content-type': 'application/json' }
    expect((await check('POST', hook, hook, { project: null, rawBody: payload, headers: unsigned })).status).toBe(401)

    const twilio = '/v1/webhooks/twilio'
    const form = new URLSearchParams({ MessageSid: messageSid(), MessageStatus: 'delivered' })
    const twilioHeaders = {
      'content-type': 'application/x-www-form-urlencoded',
      'x-twilio-signature': await signTwilio(TWILIO_CALLBACK, form),
    }
    const status = { project: null, rawBody: form.toString(), headers: twilioHeaders }
    expect((await check('POST', twilio, twilio, status)).status).toBe(200)
    const forged = { ...status, headers: { ...twilioHeaders, 'x-twilio-signature': 'AAAA' } }
    expect((await check('POST', twilio, twilio, forged)).status).toBe(401)

    expect((await check('GET', '/health', '/health', { project: null })).status).toBe(200)
    expect((await check('GET', '/openapi.json', '/openapi.json', { project: null })).status).toBe(200)
    await loginCode(p, '+12025550309')
    const outbox = '/dev/whatsapp/outbox'
    expect((await check('GET', outbox, `${outbox}?phone_number=%2B12025550309&limit=5`, { project: p })).status).toBe(
      200,
    )
    expect((await check('GET', outbox, `${outbox}?limit=0`, { project: p })).status).toBe(400)
    expect((await check('GET', '/dev/outbox', '/dev/outbox?limit=5', { project: p })).status).toBe(200)
    expect((await check('GET', outbox, outbox, { project: null })).status).toBe(401)
    const meta = { ...env, WHATSAPP_PROVIDER: 'meta', SMS_PROVIDER: 'none' } as Env
    expect((await check('GET', outbox, outbox, { project: p, env: meta })).status).toBe(404)
  })

  it('the frontend SDK routes (/sdk/v1) and the phone-number frame', async () => {
    const sdk = (session?: string) => ({ project: null, headers: sdkHeaders(p as SdkProject, { session }) })
    const token = (p as SdkProject).publicToken
    const boot = '/sdk/v1/projects/bootstrap/:public_token'
    expect((await check('GET', boot, `/sdk/v1/projects/bootstrap/${token}`, sdk())).status).toBe(200)
    expect((await check('GET', boot, '/sdk/v1/projects/bootstrap/x', { project: null })).status).toBe(401)
    const login = '/sdk/v1/otps/whatsapp/login_or_create'
    const full = { phone_number: '+12025550320', expiration_minutes: 3, locale: 'fr', dfp_telemetry_id: 'd' }
    expect((await check('POST', login, login, { ...sdk(), body: full })).status).toBe(200)
    expect((await check('POST', login, login, { ...sdk(), body: { phone_number: '1' } })).status).toBe(400)
    const denied = { project: null, headers: { ...sdkHeaders(p as SdkProject), origin: 'https://elsewhere.example' } }
    expect((await check('POST', login, login, { ...denied, body: full })).status).toBe(403)

    const { code, phoneId } = await loginCode(p, '+12025550321')
    const auth = '/sdk/v1/otps/authenticate'
    const body = { token: code, method_id: phoneId, session_duration_minutes: 30 }
    expect((await check('POST', auth, auth, { ...sdk(), body: { ...body, token: wrong(code) } })).status).toBe(404)
    const started = await check('POST', auth, auth, { ...sdk(), body })
    const session = String((started.body.data as Json).session_token)
    const primary = '/sdk/v1/otps/whatsapp/send/primary'
    expect((await check('POST', primary, primary, { ...sdk(), body: { phone_number: '+12025550399' } })).status).toBe(
      404,
    )
    const secondary = '/sdk/v1/otps/whatsapp/send/secondary'
    const added = await check('POST', secondary, secondary, { ...sdk(session), body: { phone_number: '+12025550322' } })
    expect(added.status).toBe(200)
    // The number that logged in belongs to a user: send/primary reaches it.
    expect((await check('POST', primary, primary, { ...sdk(), body: { phone_number: '+12025550321' } })).status).toBe(
      200,
    )
    // The SMS routes: the same functions with the channel, and enable_autofill (here without the
    // project's sms_autofill_domain: 400).
    const smsLogin = '/sdk/v1/otps/sms/login_or_create'
    expect((await check('POST', smsLogin, smsLogin, { ...sdk(), body: { phone_number: '+12025550323' } })).status).toBe(
      200,
    )
    const autofill = { phone_number: '+12025550324', enable_autofill: true }
    expect((await check('POST', smsLogin, smsLogin, { ...sdk(), body: autofill })).status).toBe(400)
    const smsPrimary = '/sdk/v1/otps/sms/send/primary'
    const known = { phone_number: '+12025550323' }
    expect((await check('POST', smsPrimary, smsPrimary, { ...sdk(), body: known })).status).toBe(200)
    const smsSecondary = '/sdk/v1/otps/sms/send/secondary'
    const smsAdded = { ...sdk(session), body: { phone_number: '+12025550325' } }
    expect((await check('POST', smsSecondary, smsSecondary, smsAdded)).status).toBe(200)
    const sa = '/sdk/v1/sessions/authenticate'
    expect((await check('POST', sa, sa, { ...sdk(session), body: { session_duration_minutes: 60 } })).status).toBe(200)
    expect((await check('POST', sa, sa, { ...sdk(), body: {} })).status).toBe(401)
    const me = '/sdk/v1/users/me'
    expect((await check('GET', me, me, sdk(session))).status).toBe(200)
    const del = '/sdk/v1/users/phone_numbers/:phone_id'
    const addedId = String((added.body.data as Json).method_id)
    expect((await check('DELETE', del, `/sdk/v1/users/phone_numbers/${addedId}`, sdk(session))).status).toBe(200)
    expect((await check('DELETE', del, `/sdk/v1/users/phone_numbers/${addedId}`, sdk(session))).status).toBe(404)
    const events = '/sdk/v1/events'
    expect((await check('POST', events, events, { project: null, body: [{ event: {} }] })).status).toBe(200)
    const revoke = '/sdk/v1/sessions/revoke'
    expect((await check('POST', revoke, revoke, sdk(session))).status).toBe(200)
    expect((await check('POST', revoke, revoke, sdk(session))).status).toBe(404)

    expect(
      (await check('GET', '/clientside-services/index.html', '/clientside-services/index.html', { project: null }))
        .status,
    ).toBe(200)
    const parse = '/clientside-services/phone_numbers/parse'
    const number = { phoneNumber: '2025550143', regionCode: 'US' }
    expect((await check('POST', parse, parse, { project: null, body: number })).status).toBe(200)
    expect((await check('POST', parse, parse, { project: null, body: {} })).status).toBe(400)
    const example = '/clientside-services/phone_numbers/example'
    expect((await check('GET', example, `${example}?regionCode=US`, { project: null })).status).toBe(200)
    expect((await check('GET', example, `${example}?regionCode=us`, { project: null })).status).toBe(400)
  })

  // Runs last (tests in a file run in order): every documented operation had a real success above.
  it('checked a real success of every route', () => {
    expect([...succeeded].sort()).toEqual(ROUTES.map((r) => `${r.method} ${r.path}`).sort())
  })
})
