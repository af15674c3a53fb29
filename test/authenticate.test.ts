import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import type { StoredCode } from '../src/otp/code-store'
import { countingEnv, expectedUser, expectStytchError, loginOrCreate } from './helpers'
import {
  authenticate,
  countingKv,
  dbGate,
  dbPhone,
  dbUser,
  getUser,
  loginCode,
  project,
  statusCounts,
  wrong,
} from './otp-helpers'

const PHONE = '+12025550140'
const T0 = new Date('2026-11-27T10:00:00Z')

describe('POST /v1/otps/authenticate', () => {
  it('completes the login: code from the job → 200 with the Stytch response shape → verified phone, active user', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const p = await project()
    const { code, phoneId, userId } = await loginCode(p, PHONE, { create_user_as_pending: true })
    expect((await getUser(p, userId)).body).toMatchObject({ status: 'pending', phone_numbers: [{ verified: false }] })

    const res = await authenticate(p, { method_id: phoneId, code })
    expect(res.status).toBe(200)
    expect(Object.keys(res.body).sort()).toEqual([
      'method_id',
      'request_id',
      'reset_sessions',
      'session',
      'session_jwt',
      'session_token',
      'status_code',
      'user',
      'user_id',
    ])
    expect(res.body).toEqual({
      request_id: expect.stringMatching(/^request-id-test-[0-9a-f-]{36}$/),
      status_code: 200,
      user_id: userId,
      method_id: phoneId,
      reset_sessions: false,
      session_token: '',
      session_jwt: '',
      session: null,
      user: expectedUser({
        userId,
        phoneId,
        phoneNumber: PHONE,
        verified: true,
        createdAt: '2026-11-27T10:00:00Z',
      }),
    })
    expect(res.headers.get('x-request-id')).toBe(res.body.request_id)

    const user = await getUser(p, userId)
    expect(user.status).toBe(200)
    expect(user.body).toMatchObject({ status: 'active', phone_numbers: [{ phone_id: phoneId, verified: true }] })
    // The code is used: the gate is consumed by this request. Its KV record is left to its TTL, and
    // D1 refuses it: a replay is 401 and a guess against it counts nothing.
    expect(await env.OTP_KV.get(`otp:${phoneId}`)).not.toBeNull()
    expect(await dbGate(phoneId)).toMatchObject({ consumed_by: res.body.request_id })
    expectStytchError(await authenticate(p, { method_id: phoneId, code }), 401, 'unable_to_auth_otp_code')
    expectStytchError(await authenticate(p, { method_id: phoneId, code: wrong(code) }), 401, 'unable_to_auth_otp_code')
    expect(await dbGate(phoneId)).toMatchObject({ consumed_by: res.body.request_id, attempts: 0 })
    expect(user.body.status).toBe('active')
    expect((await dbUser(userId))?.failed_authentications).toBe(0)
  })

  it('costs 1 KV read and 1 D1 round trip with the right code (the used record is not deleted)', async () => {
    const p = await project()
    const { code, phoneId } = await loginCode(p, PHONE)
    await authenticate(p, { method_id: phoneId, code: wrong(code) }) // warms the project cache
    const counting = countingEnv(env)
    const kv = countingKv(counting.env)
    const res = await authenticate(p, { method_id: phoneId, code }, { env: kv.env })
    expect(res.status).toBe(200)
    expect(counting.d1()).toBe(1)
    expect(kv.kvGets).toEqual([`otp:${phoneId}`])
    expect(kv.kvDeletes).toEqual([])
    expect(counting.kvPuts).toEqual([])
    expect(counting.queueSends).toEqual([])
  })

  it('answers a wrong code with 404 otp_code_not_found and still accepts the right one', async () => {
    const p = await project()
    const { code, phoneId, userId } = await loginCode(p, PHONE)
    expectStytchError(await authenticate(p, { method_id: phoneId, code: wrong(code) }), 404, 'otp_code_not_found')
    expect(await dbGate(phoneId)).toMatchObject({ attempts: 1, consumed_at: null })
    expect((await dbUser(userId))?.failed_authentications).toBe(1)
    expect((await authenticate(p, { method_id: phoneId, code })).status).toBe(200)
    expect((await dbUser(userId))?.failed_authentications).toBe(0)
  })

  it('answers an expired code with 401 unable_to_auth_otp_code', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const p = await project()
    const { code, phoneId } = await loginCode(p, PHONE, { expiration_minutes: 1 })
    vi.setSystemTime(T0.getTime() + 60_000)
    expectStytchError(await authenticate(p, { method_id: phoneId, code }), 401, 'unable_to_auth_otp_code')
  })

  it('accepts a code just before it expires', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const p = await project()
    const { code, phoneId } = await loginCode(p, PHONE)
    vi.setSystemTime(T0.getTime() + 2 * 60_000 - 1_000)
    expect((await authenticate(p, { method_id: phoneId, code })).status).toBe(200)
  })

  it('answers a superseded code with 401 and accepts the new one', async () => {
    const p = await project()
    const first = await loginCode(p, PHONE)
    const second = await loginCode(p, PHONE)
    expect(second.code === first.code).toBe(false)
    expectStytchError(
      await authenticate(p, { method_id: first.phoneId, code: first.code }),
      401,
      'unable_to_auth_otp_code',
    )
    // Presenting the superseded code is not a wrong guess: nothing was counted.
    expect(await dbGate(first.phoneId)).toMatchObject({ attempts: 0 })
    expect((await dbUser(first.userId))?.failed_authentications).toBe(0)
    expect((await authenticate(p, { method_id: second.phoneId, code: second.code })).status).toBe(200)
  })

  it('remembers several superseded codes', async () => {
    const p = await project()
    const codes = [await loginCode(p, PHONE), await loginCode(p, PHONE), await loginCode(p, PHONE)]
    const last = codes[2]
    for (const old of codes.slice(0, 2)) {
      if (old.code === last?.code) continue
      expectStytchError(
        await authenticate(p, { method_id: old.phoneId, code: old.code }),
        401,
        'unable_to_auth_otp_code',
      )
    }
    expect((await authenticate(p, { method_id: last?.phoneId, code: last?.code })).status).toBe(200)
  })

  it('treats the D1 gate as the authority when KV still shows a superseded code', async () => {
    const p = await project()
    const first = await loginCode(p, PHONE)
    const staleRecord = await env.OTP_KV.get(`otp:${first.phoneId}`)
    const second = await loginCode(p, PHONE)
    // A KV read elsewhere may still return the old record for a while: simulate that.
    await env.OTP_KV.put(`otp:${first.phoneId}`, staleRecord ?? '', { expirationTtl: 120 })
    expectStytchError(
      await authenticate(p, { method_id: first.phoneId, code: first.code }),
      401,
      'unable_to_auth_otp_code',
    )
    expect(await dbGate(first.phoneId)).toMatchObject({ code_id: second.codeId, attempts: 0, consumed_at: null })
    expect((await dbUser(first.userId))?.failed_authentications).toBe(0)
    // The new code is checked against the gate's own hash (test/authenticate-stale-kv.test.ts).
    expect((await authenticate(p, { method_id: second.phoneId, code: second.code })).status).toBe(200)
  })

  it('accepts the right code when the KV record is gone, once', async () => {
    const p = await project()
    const { code, phoneId } = await loginCode(p, PHONE)
    await env.OTP_KV.delete(`otp:${phoneId}`)
    expect((await authenticate(p, { method_id: phoneId, code })).status).toBe(200)
    expectStytchError(await authenticate(p, { method_id: phoneId, code }), 401, 'unable_to_auth_otp_code')
  })

  it('kills a code after 5 wrong attempts, even for the right code', async () => {
    const p = await project()
    const { code, phoneId } = await loginCode(p, PHONE)
    for (let i = 0; i < 5; i++) {
      expectStytchError(await authenticate(p, { method_id: phoneId, code: wrong(code) }), 404, 'otp_code_not_found')
    }
    expectStytchError(await authenticate(p, { method_id: phoneId, code }), 401, 'unable_to_auth_otp_code')
    expect(await dbGate(phoneId)).toMatchObject({ attempts: 5, consumed_at: null })
    // A new code starts with a fresh attempt count.
    const fresh = await loginCode(p, PHONE)
    expect((await authenticate(p, { method_id: phoneId, code: fresh.code })).status).toBe(200)
  })

  it('honours a project otp_max_attempts', async () => {
    const p = await project({ otp_max_attempts: 2 })
    const { code, phoneId } = await loginCode(p, PHONE)
    await authenticate(p, { method_id: phoneId, code: wrong(code) })
    await authenticate(p, { method_id: phoneId, code: wrong(code) })
    expectStytchError(await authenticate(p, { method_id: phoneId, code }), 401, 'unable_to_auth_otp_code')
  })

  it('accepts the right code exactly once when 12 requests race with it', async () => {
    const p = await project()
    const { code, phoneId, userId } = await loginCode(p, PHONE)
    const replies = await Promise.all(Array.from({ length: 12 }, () => authenticate(p, { method_id: phoneId, code })))
    expect(statusCounts(replies)).toEqual({ 200: 1, 401: 11 })
    for (const r of replies.filter((x) => x.status === 401)) expectStytchError(r, 401, 'unable_to_auth_otp_code')
    const winner = replies.find((r) => r.status === 200)
    expect(await dbGate(phoneId)).toMatchObject({ consumed_by: winner?.body.request_id })
    // The losers presented the right code: no failure was counted against the user.
    expect(await dbUser(userId)).toMatchObject({ status: 'active', failed_authentications: 0, locked_until: null })
  })

  it('counts exactly 5 wrong attempts when 12 wrong guesses race', async () => {
    const p = await project({ user_lock_threshold: 100 })
    const { code, phoneId } = await loginCode(p, PHONE)
    const guesses = Array.from({ length: 12 }, (_, i) => String((Number(code) + 1 + i) % 1_000_000).padStart(6, '0'))
    const replies = await Promise.all(guesses.map((g) => authenticate(p, { method_id: phoneId, code: g })))
    expect(statusCounts(replies)).toEqual({ 404: 5, 401: 7 })
    expect(await dbGate(phoneId)).toMatchObject({ attempts: 5 })
    expectStytchError(await authenticate(p, { method_id: phoneId, code }), 401, 'unable_to_auth_otp_code')
  })

  it('counts toward the user lock only the failures against the live code when 12 race', async () => {
    const p = await project()
    const { code, phoneId, userId } = await loginCode(p, PHONE)
    const replies = await Promise.all(
      Array.from({ length: 12 }, () => authenticate(p, { method_id: phoneId, code: wrong(code) })),
    )
    // 5 counted against the code; the other 7 meet a dead code, which is no attempt on a live one.
    expect(statusCounts(replies)).toEqual({ 404: 5, 401: 7 })
    expect(await dbUser(userId)).toMatchObject({ failed_authentications: 5, locked_until: null })
  })

  it('answers 404 phone_number_not_found for an unknown method_id', async () => {
    const p = await project()
    const res = await authenticate(p, { method_id: `phone-number-test-${crypto.randomUUID()}`, code: '123456' })
    expectStytchError(res, 404, 'phone_number_not_found')
  })

  it('never lets another project read or spend a code', async () => {
    const owner = await project()
    const other = await project()
    const { code, phoneId, userId } = await loginCode(owner, PHONE)
    expectStytchError(await authenticate(other, { method_id: phoneId, code }), 404, 'phone_number_not_found')
    expectStytchError(
      await authenticate(other, { method_id: phoneId, code: wrong(code) }),
      404,
      'phone_number_not_found',
    )
    expect(await dbGate(phoneId)).toMatchObject({ attempts: 0, consumed_at: null })
    expect((await dbUser(userId))?.failed_authentications).toBe(0)
    expect((await authenticate(owner, { method_id: phoneId, code })).status).toBe(200)
  })

  it('checks options.ip_match_required and user_agent_match_required against the send attributes', async () => {
    const p = await project()
    const attributes = { ip_address: '203.0.113.7', user_agent: 'Mozilla/5.0 test' }
    const { code, phoneId, userId } = await loginCode(p, PHONE, { attributes })
    const ipOnly = { ip_match_required: true, user_agent_match_required: false }
    const uaOnly = { ip_match_required: false, user_agent_match_required: true }
    const cases = [
      { attributes: { ip_address: '203.0.113.8' }, options: ipOnly },
      { options: ipOnly },
      { attributes: { ...attributes, user_agent: 'curl/8' }, options: uaOnly },
    ]
    for (const extra of cases) {
      expectStytchError(await authenticate(p, { method_id: phoneId, code, ...extra }), 401, 'attribute_mismatch')
    }
    expect(await dbGate(phoneId)).toMatchObject({ attempts: 3, consumed_at: null })
    expect((await dbUser(userId))?.failed_authentications).toBe(3)
    // Without options the attributes are not compared; with matching ones the code is accepted.
    const both = { ip_match_required: true, user_agent_match_required: true }
    expect((await authenticate(p, { method_id: phoneId, code, attributes, options: both })).status).toBe(200)
  })

  it('fails closed when a match is required but nothing was stored at send time', async () => {
    const p = await project()
    const { code, phoneId } = await loginCode(p, PHONE)
    const res = await authenticate(p, {
      method_id: phoneId,
      code,
      attributes: { ip_address: '203.0.113.7' },
      options: { ip_match_required: true, user_agent_match_required: false },
    })
    expectStytchError(res, 401, 'attribute_mismatch')
    expect((await authenticate(p, { method_id: phoneId, code, options: null })).status).toBe(200)
  })

  it('answers a wrong IP or user agent the same whether the code is right, wrong or replaced', async () => {
    const p = await project({ otp_max_attempts: 20 })
    const attributes = { ip_address: '203.0.113.7', user_agent: 'Mozilla/5.0 test' }
    const first = await loginCode(p, PHONE, { attributes })
    const { code, phoneId, userId } = await loginCode(p, PHONE, { attributes })
    const cases = [
      { attributes: { ...attributes, ip_address: '203.0.113.8' }, options: { ip_match_required: true } },
      { attributes: { ...attributes, user_agent: 'curl/8' }, options: { user_agent_match_required: true } },
    ]
    let attempts = 0
    for (const extra of cases) {
      const guesses = first.code === code ? [code, wrong(code)] : [code, wrong(code), first.code]
      for (const guess of guesses) {
        // The reply must not tell the caller whether the code was right: same status, same error_type.
        expectStytchError(
          await authenticate(p, { method_id: phoneId, code: guess, ...extra }),
          401,
          'attribute_mismatch',
        )
        attempts++
      }
    }
    // Each counts as one failed attempt on the current code, whatever the code was.
    expect(await dbGate(phoneId)).toMatchObject({ attempts, consumed_at: null })
    expect((await dbUser(userId))?.failed_authentications).toBe(attempts)
    // With the attributes right, a wrong code is a wrong code again, and the right one logs in.
    const options = { ip_match_required: true, user_agent_match_required: true }
    expectStytchError(
      await authenticate(p, { method_id: phoneId, code: wrong(code), attributes, options }),
      404,
      'otp_code_not_found',
    )
    expect((await authenticate(p, { method_id: phoneId, code, attributes, options })).status).toBe(200)
  })

  it.each([
    ['2001:db8::1', '2001:0DB8:0:0:0:0:0:1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
  ])('compares IPs in canonical form: sent %s, presented %s', async (sent, presented) => {
    const p = await project()
    const { code, phoneId, userId } = await loginCode(p, PHONE, { attributes: { ip_address: sent } })
    const options = { ip_match_required: true }
    const res = await authenticate(p, { method_id: phoneId, code, attributes: { ip_address: presented }, options })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    expect((await dbUser(userId))?.failed_authentications).toBe(0)
  })

  it('still honours a record written before attributes were hashed (clear values, live for one code lifetime)', async () => {
    const p = await project()
    const { code, phoneId } = await loginCode(p, PHONE, { attributes: { ip_address: '203.0.113.7' } })
    const { ip_hash: _hash, ...record } = JSON.parse((await env.OTP_KV.get(`otp:${phoneId}`)) ?? '{}')
    await env.OTP_KV.put(`otp:${phoneId}`, JSON.stringify({ ...record, ip_address: '203.0.113.7' }))
    const options = { ip_match_required: true }
    expectStytchError(
      await authenticate(p, { method_id: phoneId, code, attributes: { ip_address: '203.0.113.9' }, options }),
      401,
      'attribute_mismatch',
    )
    const ok = await authenticate(p, { method_id: phoneId, code, attributes: { ip_address: '203.0.113.7' }, options })
    expect(ok.status, JSON.stringify(ok.body)).toBe(200)
  })

  it('keeps the send-time IP and user agent only as keyed hashes, in KV and in D1', async () => {
    const p = await project()
    const attributes = { ip_address: '2001:db8:85a3::8a2e:370:7334', user_agent: 'Mozilla/5.0 (Pixel 9) unique-agent' }
    const { phoneId } = await loginCode(p, PHONE, { attributes })
    const raw = (await env.OTP_KV.get(`otp:${phoneId}`)) ?? ''
    const row = await env.DB.prepare('SELECT * FROM otp_codes WHERE phone_id = ?1').bind(phoneId).first()
    expect(JSON.parse(raw)).toMatchObject({
      ip_hash: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      ua_hash: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
    })
    expect(row).toMatchObject({ ip_address: null, user_agent: null, ip_hash: expect.any(String) })
    for (const text of [raw, JSON.stringify(row)]) {
      expect(text).not.toContain('8a2e')
      expect(text).not.toContain('unique-agent')
    }
  })

  it('stores no plaintext and keeps the record versioned', async () => {
    const p = await project()
    const first = await loginCode(p, PHONE)
    const second = await loginCode(p, PHONE)
    const stored = await env.OTP_KV.get<StoredCode>(`otp:${second.phoneId}`, 'json')
    expect(stored?.superseded).toEqual([
      { code_id: expect.any(String), mac: expect.any(String), expires_at: expect.any(Number) },
    ])
    expect(JSON.stringify(stored)).not.toContain(first.code)
    expect(JSON.stringify(stored)).not.toContain(second.code)
  })
})

describe('user lock', () => {
  const failTimes = async (p: Awaited<ReturnType<typeof project>>, n: number) => {
    const replies = []
    for (let i = 0; i < n; i++) {
      const { code, phoneId } = await loginCode(p, PHONE)
      replies.push(await authenticate(p, { method_id: phoneId, code: wrong(code) }))
    }
    return replies
  }

  it('locks after 10 consecutive failures for an hour (429), then a success resets it', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const p = await project()
    const replies = await failTimes(p, 10)
    expect(replies.slice(0, 9).map((r) => r.status)).toEqual(Array(9).fill(404))
    const locked = expectStytchError(
      replies[9] ?? { status: 0, headers: new Headers(), body: {} },
      429,
      'user_lock_limit_reached',
    )
    expect(locked.error_message).toMatch(/locked/)

    // Even the right code is refused while the lock lasts, and it is not consumed.
    const { code, phoneId, userId } = await loginCode(p, PHONE, { expiration_minutes: 10 })
    expectStytchError(await authenticate(p, { method_id: phoneId, code }), 429, 'user_lock_limit_reached')
    expect(await dbGate(phoneId)).toMatchObject({ consumed_at: null, attempts: 0 })
    const user = await getUser(p, userId)
    expect(user.body).toMatchObject({
      is_locked: true,
      lock_created_at: '2026-11-27T10:00:00Z',
      lock_expires_at: '2026-11-27T11:00:00Z',
    })

    vi.setSystemTime(T0.getTime() + 3_600_000 - 1_000)
    const late = await loginCode(p, PHONE)
    expectStytchError(await authenticate(p, { method_id: phoneId, code: late.code }), 429, 'user_lock_limit_reached')

    vi.setSystemTime(T0.getTime() + 3_600_000)
    const after = await loginCode(p, PHONE)
    expect((await authenticate(p, { method_id: phoneId, code: after.code })).status).toBe(200)
    expect(await dbUser(userId)).toMatchObject({ failed_authentications: 0, locked_until: null, lock_created_at: null })
    const unlocked = await getUser(p, userId)
    expect(unlocked.body.is_locked).toBe(false)
    expect(unlocked.body).not.toHaveProperty('lock_expires_at')
  })

  it('counts consecutive failures only: a success in between resets the count', async () => {
    const p = await project()
    await failTimes(p, 9)
    const { code, phoneId, userId } = await loginCode(p, PHONE)
    expect((await authenticate(p, { method_id: phoneId, code })).status).toBe(200)
    const replies = await failTimes(p, 9)
    expect(replies.map((r) => r.status)).toEqual(Array(9).fill(404))
    expect((await dbUser(userId))?.failed_authentications).toBe(9)
  })

  it('counts only attempts against a live code: guesses at a used-up or a used code never lock', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const p = await project({ otp_max_attempts: 2, user_lock_threshold: 3 })
    const { code, phoneId, userId } = await loginCode(p, PHONE)
    for (let i = 0; i < 2; i++) {
      expectStytchError(await authenticate(p, { method_id: phoneId, code: wrong(code) }), 404, 'otp_code_not_found')
    }
    // The code is out of attempts: however many more guesses, the user is not locked.
    for (let i = 0; i < 5; i++) {
      expectStytchError(
        await authenticate(p, { method_id: phoneId, code: wrong(code) }),
        401,
        'unable_to_auth_otp_code',
      )
    }
    expect(await dbUser(userId)).toMatchObject({ failed_authentications: 2, locked_until: null })
    // A used code: its KV record may outlive it elsewhere; here it is put back to stand for that.
    const used = await loginCode(p, PHONE)
    const record = await env.OTP_KV.get(`otp:${phoneId}`)
    expect((await authenticate(p, { method_id: phoneId, code: used.code })).status).toBe(200)
    if (record) await env.OTP_KV.put(`otp:${phoneId}`, record)
    for (let i = 0; i < 4; i++) {
      expectStytchError(
        await authenticate(p, { method_id: phoneId, code: wrong(used.code) }),
        401,
        'unable_to_auth_otp_code',
      )
    }
    expect(await dbUser(userId)).toMatchObject({ failed_authentications: 0, locked_until: null })
  })

  it('uses the project threshold and duration, and counts afresh after a lock expires', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const p = await project({ user_lock_threshold: 3, user_lock_seconds: 300 })
    expect((await failTimes(p, 3)).map((r) => r.status)).toEqual([404, 404, 429])
    vi.setSystemTime(T0.getTime() + 299_000)
    expect((await failTimes(p, 1))[0]?.status).toBe(429)
    vi.setSystemTime(T0.getTime() + 300_000)
    // The expired lock does not re-trigger on the next failure: counting starts again at 1.
    expect((await failTimes(p, 2)).map((r) => r.status)).toEqual([404, 404])
    expect((await failTimes(p, 1))[0]?.status).toBe(429)
  })
})

describe('sandbox', () => {
  it('authenticates the sandbox number with 000000 in a test project', async () => {
    const p = await project()
    const res = await loginOrCreate({ phone_number: '+10000000000', create_user_as_pending: true }, { project: p })
    const phoneId = String(res.body.phone_id)
    expectStytchError(await authenticate(p, { method_id: phoneId, code: '123456' }), 404, 'otp_code_not_found')
    const ok = await authenticate(p, { method_id: phoneId, code: '000000' })
    expect(ok.status).toBe(200)
    expect(ok.body.user).toMatchObject({
      status: 'active',
      phone_numbers: [{ phone_id: phoneId, phone_number: '+10000000000', verified: true }],
    })
    expect((await authenticate(p, { method_id: phoneId, code: '000000' })).status).toBe(200)
    expect(await dbPhone(phoneId)).toMatchObject({ verified: 1 })
  })

  it('gives 000000 no special meaning for other numbers or in live projects', async () => {
    for (const p of [await project(), await project({}, 'live')]) {
      let issued = await loginCode(p, PHONE)
      while (issued.code === '000000') issued = await loginCode(p, PHONE)
      const res = await authenticate(p, { method_id: issued.phoneId, code: '000000' })
      expectStytchError(res, 404, 'otp_code_not_found')
    }
  })
})

describe('request validation', () => {
  const methodId = `phone-number-test-${crypto.randomUUID()}`

  it.each([
    [{ method_id: 'phone-123', code: '123456' }, 'invalid_method_id'],
    [{ method_id: `user-test-${crypto.randomUUID()}`, code: '123456' }, 'invalid_method_id'],
    [{ method_id: 42, code: '123456' }, 'invalid_method_id'],
    [{ method_id: methodId, code: '12345' }, 'invalid_code'],
    [{ method_id: methodId, code: '1234567' }, 'invalid_code'],
    [{ method_id: methodId, code: 'abcdef' }, 'invalid_code'],
    [{ method_id: methodId, code: 123456 }, 'invalid_code'],
    [{ method_id: methodId, code: '12 456' }, 'invalid_code'],
    [{ code: '123456' }, 'bad_request'],
    [{ method_id: methodId }, 'bad_request'],
    [{ method_id: methodId, code: '123456', session_duration_minutes: 4 }, 'invalid_session_duration_minutes'],
    [{ method_id: methodId, code: '123456', session_duration_minutes: 527_041 }, 'invalid_session_duration_minutes'],
    [{ method_id: methodId, code: '123456', session_duration_minutes: 60.5 }, 'invalid_session_duration_minutes'],
    [{ method_id: methodId, code: '123456', attributes: { ip_address: 'nope' } }, 'invalid_ip_address'],
    [{ method_id: methodId, code: '123456', options: { ip_match_required: 'yes' } }, 'bad_request'],
    [{ method_id: methodId, code: '123456', session_custom_claims: 'x' }, 'invalid_session_custom_claims'],
  ])('refuses %j with 400 %s', async (body, errorType) => {
    const p = await project()
    expectStytchError(await authenticate(p, body), 400, errorType)
  })

  it('refuses an unknown session_token or a malformed session_jwt before using the code', async () => {
    const p = await project()
    const { code, phoneId } = await loginCode(p, PHONE)
    const unknown = { session_token: 'mZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q' }
    expectStytchError(await authenticate(p, { method_id: phoneId, code, ...unknown }), 404, 'session_not_found')
    const malformed = { session_jwt: 'eyJ.x.y' }
    expectStytchError(await authenticate(p, { method_id: phoneId, code, ...malformed }), 400, 'invalid_session_jwt')
    // Refused before the code was looked at: it still works.
    expect((await authenticate(p, { method_id: phoneId, code })).status).toBe(200)
  })

  it.each([5, 527_040])('accepts session_duration_minutes %i and starts a session that long', async (minutes) => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const p = await project()
    const { code, phoneId } = await loginCode(p, PHONE)
    const res = await authenticate(p, { method_id: phoneId, code, session_duration_minutes: minutes })
    expect(res.status).toBe(200)
    expect(res.body.session_token).toMatch(/^[A-Za-z0-9_-]{44}$/)
    expect(res.body.session).toMatchObject({
      expires_at: new Date(T0.getTime() + minutes * 60_000).toISOString().replace('.000', ''),
    })
  })

  it('accepts the nulls some SDKs send for unset fields', async () => {
    const p = await project()
    const { code, phoneId } = await loginCode(p, PHONE)
    const nulls = {
      attributes: null,
      options: null,
      session_token: null,
      session_jwt: null,
      session_duration_minutes: null,
    }
    expect((await authenticate(p, { method_id: phoneId, code, ...nulls })).status).toBe(200)
  })

  it('requires project credentials', async () => {
    const res = await authenticate(
      await project(),
      { method_id: methodId, code: '123456' },
      { headers: { authorization: 'Basic eDp5' } },
    )
    expectStytchError(res, 401, 'unauthorized_credentials')
  })
})
