import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import { callJson, countingEnv, expectedUser, expectStytchError, issueCode, loginOrCreate } from './helpers'
import {
  authenticate,
  dbGate,
  dbPhone,
  dbUser,
  deletePhone,
  deleteUser,
  getUser,
  loginCode,
  project,
} from './otp-helpers'

const PHONE = '+12025550160'
const OTHER_PHONE = '+12025550161'
const T0 = new Date('2026-11-27T10:00:00Z')

describe('GET /v1/users/{user_id}', () => {
  it('returns the Stytch user object flattened, with request_id and status_code', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const p = await project()
    const { userId, phoneId } = await loginCode(p, PHONE, { create_user_as_pending: true })
    const res = await getUser(p, userId)
    expect(res.status).toBe(200)
    expect(res.body).toEqual({
      request_id: expect.stringMatching(/^request-id-test-[0-9a-f-]{36}$/),
      status_code: 200,
      ...expectedUser({
        userId,
        phoneId,
        phoneNumber: PHONE,
        verified: false,
        status: 'pending',
        createdAt: '2026-11-27T10:00:00Z',
      }),
    })
    expect(res.headers.get('cache-control')).toBe('no-store')
  })

  it('reads a damaged metadata column as an empty object and logs it', async () => {
    const p = await project()
    const { userId } = await loginCode(p, PHONE)
    await env.DB.prepare(`UPDATE users SET trusted_metadata = 'not json', untrusted_metadata = '[]' WHERE id = ?1`)
      .bind(userId)
      .run()
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const res = await getUser(p, userId)
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ trusted_metadata: {}, untrusted_metadata: {} })
    const logged = errors.mock.calls.map((c) => JSON.parse(String(c[0])))
    expect(logged.filter((l) => l.event === 'user_metadata_unreadable')).toHaveLength(2)
  })

  it('is one D1 round trip', async () => {
    const p = await project()
    const { userId } = await loginCode(p, PHONE)
    await getUser(p, userId) // warms the project cache
    const counting = countingEnv(env)
    const res = await callJson('GET', `/v1/users/${userId}`, { project: p, env: counting.env })
    expect(res.status).toBe(200)
    expect(counting.d1()).toBe(1)
  })

  it.each([
    ['user-test-123', 'invalid_user_id'],
    ['user id', 'invalid_user_id'],
    [`phone-number-test-${crypto.randomUUID()}`, 'invalid_user_id'],
    [`user-test-${crypto.randomUUID().toUpperCase()}`, 'invalid_user_id'],
  ])('refuses the malformed id %s with 400 %s', async (id, errorType) => {
    expectStytchError(await getUser(await project(), id), 400, errorType)
  })

  it('answers 404 user_not_found for an unknown id and for another project’s user', async () => {
    const p = await project()
    const other = await project()
    const { userId } = await loginCode(other, PHONE)
    expectStytchError(await getUser(p, `user-test-${crypto.randomUUID()}`), 404, 'user_not_found')
    expectStytchError(await getUser(p, userId), 404, 'user_not_found')
    expectStytchError(await getUser(p, userId.replace('-test-', '-live-')), 404, 'user_not_found')
  })

  it('requires project credentials', async () => {
    const { userId } = await loginCode(await project(), PHONE)
    expectStytchError(await callJson('GET', `/v1/users/${userId}`, { project: null }), 401, 'unauthorized_credentials')
  })

  it('answers 405 for methods the route does not have', async () => {
    const p = await project()
    const { userId } = await loginCode(p, PHONE)
    expectStytchError(
      await callJson('POST', `/v1/users/${userId}`, { project: p, body: {} }),
      405,
      'method_not_allowed',
    )
  })
})

describe('DELETE /v1/users/{user_id}', () => {
  it('deletes the user with its phones and codes, in D1 and KV', async () => {
    const p = await project()
    const { userId, phoneId, code } = await loginCode(p, PHONE)
    const attached = await issueCode(p, { phone_number: OTHER_PHONE, user_id: userId }, { path: 'send' })
    const res = await deleteUser(p, userId)
    expect(res.status).toBe(200)
    expect(res.body).toEqual({
      request_id: expect.stringMatching(/^request-id-test-/),
      user_id: userId,
      status_code: 200,
    })
    expect(await dbUser(userId)).toBeNull()
    for (const id of [phoneId, attached.phoneId]) {
      expect(await dbPhone(id)).toBeNull()
      expect(await dbGate(id)).toBeNull()
      expect(await env.OTP_KV.get(`otp:${id}`)).toBeNull()
    }
    expectStytchError(await getUser(p, userId), 404, 'user_not_found')
    expectStytchError(await authenticate(p, { method_id: phoneId, code }), 404, 'phone_number_not_found')
    expectStytchError(await deleteUser(p, userId), 404, 'user_not_found')
    // The number is free again: the next login creates a new user.
    const login = await loginOrCreate({ phone_number: PHONE }, { project: p })
    expect(login.body).toMatchObject({ user_created: true })
  })

  it('cannot delete another project’s user, and refuses a malformed id', async () => {
    const p = await project()
    const other = await project()
    const { userId } = await loginCode(other, PHONE)
    expectStytchError(await deleteUser(p, userId), 404, 'user_not_found')
    expect((await getUser(other, userId)).status).toBe(200)
    expectStytchError(await deleteUser(p, 'user-test-nope'), 400, 'invalid_user_id')
  })

  it('accepts the empty JSON body the Stytch SDK sends', async () => {
    const p = await project()
    const { userId } = await loginCode(p, PHONE)
    const res = await callJson('DELETE', `/v1/users/${userId}`, { project: p, body: {} })
    expect(res.status).toBe(200)
  })
})

describe('DELETE /v1/users/phone_numbers/{phone_id}', () => {
  it('removes the number and its code and returns the user as it is afterwards', async () => {
    const p = await project()
    const first = await loginCode(p, PHONE)
    const second = await issueCode(p, { phone_number: OTHER_PHONE, user_id: first.userId }, { path: 'send' })
    const res = await deletePhone(p, second.phoneId)
    expect(res.status).toBe(200)
    expect(Object.keys(res.body).sort()).toEqual(['request_id', 'status_code', 'user', 'user_id'])
    expect(res.body).toMatchObject({
      user_id: first.userId,
      status_code: 200,
      user: {
        user_id: first.userId,
        phone_numbers: [{ phone_id: first.phoneId, phone_number: PHONE, verified: false }],
      },
    })
    expect(await dbPhone(second.phoneId)).toBeNull()
    expect(await dbGate(second.phoneId)).toBeNull()
    expect(await env.OTP_KV.get(`otp:${second.phoneId}`)).toBeNull()
    expectStytchError(
      await authenticate(p, { method_id: second.phoneId, code: second.code }),
      404,
      'phone_number_not_found',
    )
    expect((await getUser(p, first.userId)).body.phone_numbers).toHaveLength(1)
    // The user's other number is untouched.
    expect((await authenticate(p, { method_id: first.phoneId, code: first.code })).status).toBe(200)
    expectStytchError(await deletePhone(p, second.phoneId), 404, 'phone_number_not_found')
  })

  it('can remove a user’s last number and keeps the user', async () => {
    const p = await project()
    const { userId, phoneId } = await loginCode(p, PHONE)
    const res = await deletePhone(p, phoneId)
    expect(res.body).toMatchObject({ user: { phone_numbers: [] } })
    expect((await getUser(p, userId)).status).toBe(200)
  })

  it('cannot delete another project’s number, and refuses malformed ids', async () => {
    const p = await project()
    const other = await project()
    const { phoneId } = await loginCode(other, PHONE)
    expectStytchError(await deletePhone(p, phoneId), 404, 'phone_number_not_found')
    expect(await dbPhone(phoneId)).not.toBeNull()
    expectStytchError(await deletePhone(p, 'phone-number-x'), 400, 'invalid_phone_id')
    expectStytchError(await deletePhone(p, `user-test-${crypto.randomUUID()}`), 400, 'invalid_phone_id')
    expectStytchError(await deletePhone(p, `phone-number-test-${crypto.randomUUID()}`), 404, 'phone_number_not_found')
  })

  it('treats an attachment whose window passed as gone', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const p = await project()
    const { userId } = await loginCode(p, PHONE)
    const attached = await issueCode(p, { phone_number: OTHER_PHONE, user_id: userId }, { path: 'send' })
    vi.setSystemTime(T0.getTime() + 5 * 60_000)
    expectStytchError(await deletePhone(p, attached.phoneId), 404, 'phone_number_not_found')
    expect(await dbPhone(attached.phoneId)).toBeNull()
  })
})

describe('the whole login', () => {
  it('login_or_create → code from the delivery job → authenticate → GET user', async () => {
    const p = await project()
    const login = await loginOrCreate({ phone_number: PHONE, create_user_as_pending: true }, { project: p })
    expect(login.body.user_created).toBe(true)
    const sent = await issueCode(p, { phone_number: PHONE }, { path: 'send' })
    const auth = await authenticate(p, { method_id: sent.phoneId, code: sent.code, session_duration_minutes: 60 })
    expect(auth.status).toBe(200)
    const user = await getUser(p, String(login.body.user_id))
    expect(user.body).toMatchObject({
      user_id: login.body.user_id,
      status: 'active',
      phone_numbers: [{ phone_id: login.body.phone_id, phone_number: PHONE, verified: true }],
      is_locked: false,
    })
    expect({ ...(auth.body.user as object), request_id: user.body.request_id, status_code: 200 }).toEqual(user.body)
  })
})
