import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import { countingEnv, expectStytchError, issueCode, loginOrCreate } from './helpers'
import { authenticate, countingKv, dbGate, dbPhone, getUser, loginCode, project, send } from './otp-helpers'

const PHONE = '+12025550150'
const OTHER_PHONE = '+12025550151'
const T0 = new Date('2026-11-27T10:00:00Z')

const phonesWithNumber = async (projectId: string, phoneNumber: string) =>
  (
    await env.DB.prepare('SELECT id, user_id, verified FROM phones WHERE project_id = ?1 AND phone_number = ?2')
      .bind(projectId, phoneNumber)
      .all<{ id: string; user_id: string; verified: number }>()
  ).results

describe('POST /v1/otps/whatsapp/send', () => {
  it("sends to a user's phone like login_or_create and returns exactly the four fields", async () => {
    const p = await project()
    const login = await loginCode(p, PHONE)
    const sent = await issueCode(p, { phone_number: PHONE }, { path: 'send' })
    expect(Object.keys(sent.body).sort()).toEqual(['phone_id', 'request_id', 'status_code', 'user_id'])
    expect(sent.body).toEqual({
      request_id: expect.stringMatching(/^request-id-test-[0-9a-f-]{36}$/),
      user_id: login.userId,
      phone_id: login.phoneId,
      status_code: 200,
    })
    // The new code supersedes the one login_or_create sent.
    if (login.code !== sent.code) {
      expectStytchError(
        await authenticate(p, { method_id: login.phoneId, code: login.code }),
        401,
        'unable_to_auth_otp_code',
      )
    }
    expect((await authenticate(p, { method_id: sent.phoneId, code: sent.code })).status).toBe(200)
  })

  it('honours expiration_minutes, locale and attributes as login_or_create does', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const p = await project()
    await loginOrCreate({ phone_number: PHONE }, { project: p })
    const counting = countingEnv(env)
    const attributes = { ip_address: '203.0.113.9', user_agent: 'agent' }
    const body = { phone_number: PHONE, expiration_minutes: 5, locale: 'es', attributes }
    const res = await send(p, body, { env: counting.env })
    expect(res.status).toBe(200)
    expect(counting.queueSends[0]).toMatchObject({ locale: 'es', expires_at: T0.getTime() + 5 * 60_000 })
    const stored = await env.OTP_KV.get<Record<string, unknown>>(`otp:${res.body.phone_id}`, 'json')
    expect(stored).toMatchObject({ expires_at: T0.getTime() + 5 * 60_000, ip_hash: expect.any(String) })
    // The attributes count: the code logs in only from the send's IP and user agent when asked to.
    const options = { ip_match_required: true, user_agent_match_required: true }
    const elsewhere = { ...attributes, ip_address: '203.0.113.10' }
    const phoneId = res.body.phone_id
    const code = '000001' // any code: the attributes are judged first
    expectStytchError(
      await authenticate(p, { method_id: phoneId, code, attributes: elsewhere, options }),
      401,
      'attribute_mismatch',
    )
  })

  it('is one D1 round trip, one KV write and one queue send for a first code', async () => {
    const p = await project()
    await loginOrCreate({ phone_number: PHONE, expiration_minutes: 1 }, { project: p })
    await env.DB.prepare('UPDATE otp_codes SET consumed_at = 1').run() // no live code to carry over
    const counting = countingEnv(env)
    const kv = countingKv(counting.env)
    const res = await send(p, { phone_number: PHONE }, { env: kv.env })
    expect(res.status).toBe(200)
    expect(counting.d1()).toBe(1)
    expect(counting.kvPuts).toEqual([`otp:${res.body.phone_id}`])
    expect(kv.kvGets).toEqual([])
    expect(counting.queueSends).toHaveLength(1)
  })

  it('reads the old KV record only when it replaces a live code', async () => {
    const p = await project()
    const { phoneId } = await loginCode(p, PHONE)
    const counting = countingEnv(env)
    const kv = countingKv(counting.env)
    expect((await send(p, { phone_number: PHONE }, { env: kv.env })).status).toBe(200)
    expect(counting.d1()).toBe(1)
    expect(kv.kvGets).toEqual([`otp:${phoneId}`])
  })

  it('answers 404 phone_number_not_found for a number no user has, and writes nothing', async () => {
    const p = await project()
    const counting = countingEnv(env)
    expectStytchError(await send(p, { phone_number: PHONE }, { env: counting.env }), 404, 'phone_number_not_found')
    expect(counting.queueSends).toEqual([])
    expect(counting.kvPuts).toEqual([])
    const rows = await env.DB.prepare(
      'SELECT COUNT(*) AS n FROM deliveries d JOIN phones p ON p.id = d.phone_id WHERE p.project_id = ?1',
    )
      .bind(p.id)
      .first<{ n: number }>()
    expect(rows?.n).toBe(0)
    expect(await phonesWithNumber(p.id, PHONE)).toEqual([])
  })

  it('does not send to another project’s number', async () => {
    const owner = await project()
    const other = await project()
    await loginOrCreate({ phone_number: PHONE }, { project: owner })
    expectStytchError(await send(other, { phone_number: PHONE }), 404, 'phone_number_not_found')
  })

  describe('with user_id', () => {
    it('attaches a new number unverified for 5 minutes; authenticating in time keeps it', async () => {
      vi.useFakeTimers({ toFake: ['Date'] })
      vi.setSystemTime(T0)
      const p = await project()
      const { userId, phoneId: firstPhone } = await loginCode(p, PHONE)
      const attached = await issueCode(
        p,
        { phone_number: OTHER_PHONE, user_id: userId, expiration_minutes: 10 },
        { path: 'send' },
      )
      expect(attached.body.user_id).toBe(userId)
      expect(attached.phoneId).not.toBe(firstPhone)
      expect(await dbPhone(attached.phoneId)).toEqual({
        user_id: userId,
        phone_number: OTHER_PHONE,
        verified: 0,
        attach_expires_at: T0.getTime() + 5 * 60_000,
      })
      const before = await getUser(p, userId)
      expect(before.body.phone_numbers).toEqual([
        { phone_id: firstPhone, phone_number: PHONE, verified: false },
        { phone_id: attached.phoneId, phone_number: OTHER_PHONE, verified: false },
      ])

      vi.setSystemTime(T0.getTime() + 5 * 60_000 - 1_000)
      const res = await authenticate(p, { method_id: attached.phoneId, code: attached.code })
      expect(res.status).toBe(200)
      expect(res.body.user_id).toBe(userId)
      expect(await dbPhone(attached.phoneId)).toMatchObject({ verified: 1, attach_expires_at: null })

      // Verified: it stays with the user after the window.
      vi.setSystemTime(T0.getTime() + 60 * 60_000)
      const later = await getUser(p, userId)
      expect(later.body.phone_numbers).toContainEqual({
        phone_id: attached.phoneId,
        phone_number: OTHER_PHONE,
        verified: true,
      })
      const relogin = await loginOrCreate({ phone_number: OTHER_PHONE }, { project: p })
      expect(relogin.body).toMatchObject({ user_id: userId, phone_id: attached.phoneId, user_created: false })
    })

    it('releases the number when the window passes without a successful authenticate', async () => {
      vi.useFakeTimers({ toFake: ['Date'] })
      vi.setSystemTime(T0)
      const p = await project()
      const { userId } = await loginCode(p, PHONE)
      const attached = await issueCode(
        p,
        { phone_number: OTHER_PHONE, user_id: userId, expiration_minutes: 10 },
        { path: 'send' },
      )

      vi.setSystemTime(T0.getTime() + 5 * 60_000)
      const user = await getUser(p, userId)
      expect((user.body.phone_numbers as unknown[]).length).toBe(1)
      // The code outlives the window, but the number is no longer the user's.
      expectStytchError(
        await authenticate(p, { method_id: attached.phoneId, code: attached.code }),
        401,
        'unable_to_auth_otp_code',
      )
      expect(await dbPhone(attached.phoneId)).toBeNull()
      expect(await dbGate(attached.phoneId)).toBeNull()
      expectStytchError(
        await authenticate(p, { method_id: attached.phoneId, code: attached.code }),
        404,
        'phone_number_not_found',
      )
      // A later login with that number creates a new user.
      const login = await loginOrCreate({ phone_number: OTHER_PHONE }, { project: p })
      expect(login.body).toMatchObject({ user_created: true })
      expect(login.body.user_id).not.toBe(userId)
    })

    it('lets another user claim an expired attachment', async () => {
      vi.useFakeTimers({ toFake: ['Date'] })
      vi.setSystemTime(T0)
      const p = await project()
      const first = await loginCode(p, PHONE)
      const second = await loginCode(p, '+12025550152')
      await issueCode(p, { phone_number: OTHER_PHONE, user_id: first.userId }, { path: 'send' })
      expectStytchError(
        await send(p, { phone_number: OTHER_PHONE, user_id: second.userId }),
        409,
        'duplicate_phone_number',
      )
      vi.setSystemTime(T0.getTime() + 5 * 60_000 + 1)
      const claimed = await issueCode(p, { phone_number: OTHER_PHONE, user_id: second.userId }, { path: 'send' })
      expect(claimed.body.user_id).toBe(second.userId)
    })

    it('renews the window when the same user asks again', async () => {
      vi.useFakeTimers({ toFake: ['Date'] })
      vi.setSystemTime(T0)
      const p = await project()
      const { userId } = await loginCode(p, PHONE)
      const first = await issueCode(p, { phone_number: OTHER_PHONE, user_id: userId }, { path: 'send' })
      vi.setSystemTime(T0.getTime() + 4 * 60_000)
      const again = await issueCode(p, { phone_number: OTHER_PHONE, user_id: userId }, { path: 'send' })
      expect(again.phoneId).toBe(first.phoneId)
      expect(await dbPhone(first.phoneId)).toMatchObject({ attach_expires_at: T0.getTime() + 9 * 60_000 })
    })

    it("sends to the user's own verified number as usual", async () => {
      const p = await project()
      const login = await loginCode(p, PHONE)
      expect((await authenticate(p, { method_id: login.phoneId, code: login.code })).status).toBe(200)
      const sent = await issueCode(p, { phone_number: PHONE, user_id: login.userId }, { path: 'send' })
      expect(sent.body).toMatchObject({ user_id: login.userId, phone_id: login.phoneId })
      expect(await dbPhone(login.phoneId)).toMatchObject({ verified: 1, attach_expires_at: null })
    })

    it("refuses a number another user owns with duplicate_phone_number and leaves that user's code alone", async () => {
      const p = await project()
      const owner = await loginCode(p, PHONE)
      const other = await loginCode(p, OTHER_PHONE)
      const counting = countingEnv(env)
      const res = await send(p, { phone_number: PHONE, user_id: other.userId }, { env: counting.env })
      expectStytchError(res, 409, 'duplicate_phone_number')
      expect(counting.queueSends).toEqual([])
      expect(counting.kvPuts).toEqual([])
      expect(await dbGate(owner.phoneId)).toMatchObject({ code_id: owner.codeId, attempts: 0 })
      expect((await authenticate(p, { method_id: owner.phoneId, code: owner.code })).status).toBe(200)
    })

    it('answers 404 user_not_found for an unknown user, or one of another project, and writes nothing', async () => {
      const p = await project()
      const elsewhere = await project()
      const foreign = await loginCode(elsewhere, OTHER_PHONE)
      for (const userId of [`user-test-${crypto.randomUUID()}`, foreign.userId]) {
        const counting = countingEnv(env)
        expectStytchError(
          await send(p, { phone_number: PHONE, user_id: userId }, { env: counting.env }),
          404,
          'user_not_found',
        )
        expect(counting.queueSends).toEqual([])
      }
      expect(await phonesWithNumber(p.id, PHONE)).toEqual([])
    })
  })

  describe('sandbox number', () => {
    it('answers 200 with a stable user and sends nothing, in a test project', async () => {
      const p = await project()
      const counting = countingEnv(env)
      const first = await send(p, { phone_number: '+10000000000' }, { env: counting.env })
      expect(first.status).toBe(200)
      const login = await loginOrCreate({ phone_number: '+10000000000' }, { project: p })
      expect(login.body).toMatchObject({ user_id: first.body.user_id, phone_id: first.body.phone_id })
      expect(counting.queueSends).toEqual([])
      expect(counting.kvPuts).toEqual([])
      expect((await authenticate(p, { method_id: first.body.phone_id, code: '000000' })).status).toBe(200)
    })

    it('attaches to a user without sending and verifies with 000000', async () => {
      const p = await project()
      const { userId } = await loginCode(p, PHONE)
      const counting = countingEnv(env)
      const res = await send(p, { phone_number: '+10000000000', user_id: userId }, { env: counting.env })
      expect(res.body.user_id).toBe(userId)
      expect(counting.queueSends).toEqual([])
      const ok = await authenticate(p, { method_id: res.body.phone_id, code: '000000' })
      expect(ok.status).toBe(200)
      expect(ok.body.user).toMatchObject({
        phone_numbers: [{ verified: false }, { phone_number: '+10000000000', verified: true }],
      })
    })

    it('is an invalid number in a live project', async () => {
      const p = await project({}, 'live')
      expectStytchError(await send(p, { phone_number: '+10000000000' }), 400, 'invalid_phone_number')
    })
  })

  describe('request validation', () => {
    const userId = `user-test-${crypto.randomUUID()}`
    it.each([
      [{ phone_number: '12025550150' }, 'invalid_phone_number'],
      [{ phone_number: '+1 202 555 0150' }, 'invalid_phone_number'],
      [{}, 'bad_request'],
      [{ phone_number: PHONE, expiration_minutes: 11 }, 'invalid_expiration_otp'],
      [{ phone_number: PHONE, locale: 'xx' }, 'invalid_locale'],
      [{ phone_number: PHONE, user_id: 'user-test-123' }, 'invalid_user_id'],
      [{ phone_number: PHONE, user_id: `phone-number-test-${crypto.randomUUID()}` }, 'invalid_user_id'],
      [{ phone_number: PHONE, user_id: 7 }, 'invalid_user_id'],
      [{ phone_number: PHONE, session_token: 5 }, 'invalid_session_token'],
      [{ phone_number: PHONE, session_jwt: false }, 'invalid_session_jwt'],
    ])('refuses %j with 400 %s', async (body, errorType) => {
      expectStytchError(await send(await project(), body), 400, errorType)
    })

    it('refuses an unknown session_token or a malformed session_jwt', async () => {
      const p = await project()
      await loginOrCreate({ phone_number: PHONE }, { project: p })
      for (const extra of [{ session_token: 'token' }, { session_token: 't', user_id: userId }]) {
        expectStytchError(await send(p, { phone_number: PHONE, ...extra }), 404, 'session_not_found')
      }
      expectStytchError(await send(p, { phone_number: PHONE, session_jwt: 'eyJ.x.y' }), 400, 'invalid_session_jwt')
    })

    it('accepts nulls for unset fields', async () => {
      const p = await project()
      await loginOrCreate({ phone_number: PHONE }, { project: p })
      const nulls = {
        expiration_minutes: null,
        attributes: null,
        locale: null,
        user_id: null,
        session_token: null,
        session_jwt: null,
      }
      expect((await send(p, { phone_number: PHONE, ...nulls })).status).toBe(200)
    })
  })
})
