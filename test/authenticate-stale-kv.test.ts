import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import type { StoredCode } from '../src/otp/code-store'
import { countingEnv, expectStytchError, issueCode, type TestProject } from './helpers'
import { authenticate, countingKv, dbGate, dbUser, loginCode, project, statusCounts, wrong } from './otp-helpers'

/**
 * KV lagging behind D1. KV is last-write-wins and eventually consistent, so two sends to one phone
 * committing close together can leave the older code's record in KV (its write landed last), and a
 * location that has not seen the newest record reads a missing or older one. D1's gate names the
 * newest code, the one the user received: it must log in (once), judged against the gate's own hash,
 * and nothing may be counted twice. Each case sets KV up as a lagging location would see it.
 */

const PHONE = '+12025550160'
const IP = '203.0.113.60'

/** Two codes for one phone, then the first one's KV record put back: the reordered KV write. */
async function reorderedWrite(p: TestProject, extra: { first?: object; second?: object } = {}) {
  const first = await loginCode(p, PHONE, { ...extra.first })
  const staleRecord = await env.OTP_KV.get(`otp:${first.phoneId}`)
  const second = await loginCode(p, PHONE, { ...extra.second })
  expect(second.phoneId).toBe(first.phoneId)
  expect(staleRecord).not.toBeNull()
  await env.OTP_KV.put(`otp:${first.phoneId}`, staleRecord ?? '', { expirationTtl: 120 })
  const stored = await env.OTP_KV.get<StoredCode>(`otp:${first.phoneId}`, 'json')
  expect(stored?.code_id).toBe(first.codeId)
  expect(await dbGate(first.phoneId)).toMatchObject({ code_id: second.codeId })
  return { first, second, phoneId: first.phoneId, userId: first.userId }
}

/** One code for the phone whose KV record is not (yet) visible. */
async function missingRecord(p: TestProject) {
  const issued = await loginCode(p, PHONE)
  await env.OTP_KV.delete(`otp:${issued.phoneId}`)
  return issued
}

/** The per-IP failed authentications recorded in a project. */
const ipFailures = async (p: TestProject) =>
  Number(
    (
      await env.DB.prepare(
        `SELECT SUM(n) AS n FROM limit_counters WHERE project_id = ?1 AND kind = 'ip_failed_auths_per_hour'`,
      )
        .bind(p.id)
        .first<{ n: number }>()
    )?.n,
  )

const sessionRows = async (p: TestProject) =>
  Number(
    (await env.DB.prepare('SELECT COUNT(*) AS n FROM sessions WHERE project_id = ?1').bind(p.id).first<{ n: number }>())
      ?.n,
  )

/** Authenticate with D1 round trips, KV reads and KV deletes counted. */
async function counted(p: TestProject, body: Record<string, unknown>) {
  const counting = countingEnv(env)
  const kv = countingKv(counting.env)
  const res = await authenticate(p, body, { env: kv.env })
  return { res, d1: counting.d1(), kvGets: kv.kvGets, kvDeletes: kv.kvDeletes, kvPuts: counting.kvPuts }
}

/** A first request warms the project cache, so the counts below are the attempt's own. */
const warm = async (p: TestProject) =>
  expectStytchError(
    await authenticate(p, { method_id: `phone-number-test-${crypto.randomUUID()}`, code: '123456' }),
    404,
    'phone_number_not_found',
  )

describe('authenticate when KV holds an older code (reordered write)', () => {
  it('accepts the newest code exactly once; the old code is 401 and nothing is counted', async () => {
    const p = await project()
    const { first, second, phoneId, userId } = await reorderedWrite(p)
    const attributes = { ip_address: IP }

    // The old code is the stale record's own: superseded (the gate names another code), not a guess.
    const old = await authenticate(p, { method_id: phoneId, code: first.code, attributes })
    expectStytchError(old, 401, 'unable_to_auth_otp_code')
    expect(await dbGate(phoneId)).toMatchObject({ code_id: second.codeId, attempts: 0, consumed_at: null })
    expect((await dbUser(userId))?.failed_authentications).toBe(0)
    // As on the normal path, presenting a superseded code is one failure of the IP, recorded once.
    expect(await ipFailures(p)).toBe(1)

    const ok = await authenticate(p, { method_id: phoneId, code: second.code, attributes })
    expect(ok.status, JSON.stringify(ok.body)).toBe(200)
    expect(ok.body).toMatchObject({ user_id: userId, method_id: phoneId })
    expect(ok.body.user).toMatchObject({ status: 'active', phone_numbers: [{ phone_id: phoneId, verified: true }] })
    const used = { code_id: second.codeId, attempts: 0, consumed_by: ok.body.request_id }
    expect(await dbGate(phoneId)).toMatchObject(used)
    expect(await ipFailures(p)).toBe(1)
    // The record (the older code's) is left to its TTL, as on the normal path: D1's gate decides.
    expect(await env.OTP_KV.get(`otp:${phoneId}`)).not.toBeNull()

    expectStytchError(await authenticate(p, { method_id: phoneId, code: second.code }), 401, 'unable_to_auth_otp_code')
    expectStytchError(await authenticate(p, { method_id: phoneId, code: first.code }), 401, 'unable_to_auth_otp_code')
    expect(await dbGate(phoneId)).toMatchObject({ attempts: 0, consumed_by: ok.body.request_id })
    expect((await dbUser(userId))?.failed_authentications).toBe(0)
  })

  it('counts a wrong code exactly once: one attempt, one user failure, one IP failure', async () => {
    const p = await project()
    const { first, second, phoneId, userId } = await reorderedWrite(p)
    let guess = wrong(second.code)
    while (guess === first.code) guess = wrong(guess)
    const res = await authenticate(p, { method_id: phoneId, code: guess, attributes: { ip_address: IP } })
    expectStytchError(res, 404, 'otp_code_not_found')
    expect(await dbGate(phoneId)).toMatchObject({ code_id: second.codeId, attempts: 1, consumed_at: null })
    expect((await dbUser(userId))?.failed_authentications).toBe(1)
    expect(await ipFailures(p)).toBe(1)
    // The right code still works, and resets the user's failures.
    expect((await authenticate(p, { method_id: phoneId, code: second.code })).status).toBe(200)
    expect((await dbUser(userId))?.failed_authentications).toBe(0)
  })

  it('accepts the newest code exactly once when 12 requests race with it', async () => {
    const p = await project()
    const { second, phoneId, userId } = await reorderedWrite(p)
    const replies = await Promise.all(
      Array.from({ length: 12 }, () =>
        authenticate(p, { method_id: phoneId, code: second.code, attributes: { ip_address: IP } }),
      ),
    )
    expect(statusCounts(replies)).toEqual({ 200: 1, 401: 11 })
    for (const r of replies.filter((x) => x.status === 401)) expectStytchError(r, 401, 'unable_to_auth_otp_code')
    const winner = replies.find((r) => r.status === 200)
    expect(await dbGate(phoneId)).toMatchObject({ attempts: 0, consumed_by: winner?.body.request_id })
    expect(await dbUser(userId)).toMatchObject({ failed_authentications: 0, locked_until: null })
    // The 11 losers presented a used code: one IP failure each, none twice.
    expect(await ipFailures(p)).toBe(11)
  })

  it('counts exactly otp_max_attempts wrong attempts when 12 wrong guesses race', async () => {
    const p = await project({ user_lock_threshold: 100 })
    const { first, second, phoneId } = await reorderedWrite(p)
    const guesses: string[] = []
    for (let g = wrong(second.code); guesses.length < 12; g = wrong(g)) if (g !== first.code) guesses.push(g)
    const replies = await Promise.all(guesses.map((code) => authenticate(p, { method_id: phoneId, code })))
    expect(statusCounts(replies)).toEqual({ 404: 5, 401: 7 })
    expect(await dbGate(phoneId)).toMatchObject({ attempts: 5, consumed_at: null })
    expectStytchError(await authenticate(p, { method_id: phoneId, code: second.code }), 401, 'unable_to_auth_otp_code')
  })

  it('starts the session of a newest code, exactly one', async () => {
    const p = await project()
    const { second, phoneId } = await reorderedWrite(p)
    const res = await authenticate(p, { method_id: phoneId, code: second.code, session_duration_minutes: 60 })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    expect(res.body.session_token).toMatch(/^[A-Za-z0-9_-]{44}$/)
    expect(res.body.session).toMatchObject({ authentication_factors: [{ delivery_method: 'whatsapp' }] })
    expect(await sessionRows(p)).toBe(1)
  })

  it('checks the attributes the newest send stored, not the stale record', async () => {
    const p = await project()
    const older = { ip_address: '198.51.100.1', user_agent: 'old-agent' }
    const newer = { ip_address: '198.51.100.2', user_agent: 'new-agent' }
    const { second, phoneId, userId } = await reorderedWrite(p, {
      first: { attributes: older },
      second: { attributes: newer },
    })
    const options = { ip_match_required: true, user_agent_match_required: true }
    // The stale record's attributes are another send's: matching them is a mismatch, counted once.
    const mismatch = await authenticate(p, { method_id: phoneId, code: second.code, attributes: older, options })
    expectStytchError(mismatch, 401, 'attribute_mismatch')
    expect(await dbGate(phoneId)).toMatchObject({ attempts: 1, consumed_at: null })
    expect((await dbUser(userId))?.failed_authentications).toBe(1)
    const ok = await authenticate(p, { method_id: phoneId, code: second.code, attributes: newer, options })
    expect(ok.status, JSON.stringify(ok.body)).toBe(200)
  })

  it('accepts the newest code issued by /send', async () => {
    const p = await project()
    const first = await loginCode(p, PHONE)
    const staleRecord = await env.OTP_KV.get(`otp:${first.phoneId}`)
    const second = await issueCode(p, { phone_number: PHONE }, { path: 'send' })
    await env.OTP_KV.put(`otp:${first.phoneId}`, staleRecord ?? '', { expirationTtl: 120 })
    expect(await dbGate(first.phoneId)).toMatchObject({ code_id: second.codeId })
    expectStytchError(
      await authenticate(p, { method_id: first.phoneId, code: first.code }),
      401,
      'unable_to_auth_otp_code',
    )
    expect((await authenticate(p, { method_id: first.phoneId, code: second.code })).status).toBe(200)
  })

  it('makes no second round trip when the gate is no longer usable', async () => {
    const p = await project()
    const { first, second, phoneId } = await reorderedWrite(p)
    const staleRecord = await env.OTP_KV.get(`otp:${phoneId}`)
    expect((await authenticate(p, { method_id: phoneId, code: second.code })).status).toBe(200)
    // The stale record shows up again after the newest code was used: the used gate decides, in one trip.
    await env.OTP_KV.put(`otp:${phoneId}`, staleRecord ?? '', { expirationTtl: 120 })
    for (const code of [first.code, second.code]) {
      const o = await counted(p, { method_id: phoneId, code })
      expectStytchError(o.res, 401, 'unable_to_auth_otp_code')
      expect(o.d1).toBe(1)
    }
  })

  it('makes no second round trip for a locked user', async () => {
    const p = await project({ user_lock_threshold: 1 })
    const issued = await loginCode(p, PHONE)
    const failure = await authenticate(p, { method_id: issued.phoneId, code: wrong(issued.code) })
    expectStytchError(failure, 429, 'user_lock_limit_reached')
    const { second, phoneId } = await reorderedWrite(p)
    const o = await counted(p, { method_id: phoneId, code: second.code })
    expectStytchError(o.res, 429, 'user_lock_limit_reached')
    expect(o.d1).toBe(1)
    expect(await dbGate(phoneId)).toMatchObject({ attempts: 0, consumed_at: null })
  })
})

describe('authenticate when the KV record is missing', () => {
  it('accepts the right code once', async () => {
    const p = await project()
    const { code, phoneId, userId } = await missingRecord(p)
    const ok = await authenticate(p, { method_id: phoneId, code, attributes: { ip_address: IP } })
    expect(ok.status, JSON.stringify(ok.body)).toBe(200)
    expect(await dbGate(phoneId)).toMatchObject({ attempts: 0, consumed_by: ok.body.request_id })
    expect(await ipFailures(p)).toBe(0)
    expect((await dbUser(userId))?.failed_authentications).toBe(0)
    expectStytchError(await authenticate(p, { method_id: phoneId, code }), 401, 'unable_to_auth_otp_code')
  })

  it('answers a wrong code with 404, counted once, and still accepts the right one', async () => {
    const p = await project()
    const { code, phoneId, userId } = await missingRecord(p)
    const res = await authenticate(p, { method_id: phoneId, code: wrong(code), attributes: { ip_address: IP } })
    expectStytchError(res, 404, 'otp_code_not_found')
    expect(await dbGate(phoneId)).toMatchObject({ attempts: 1, consumed_at: null })
    expect((await dbUser(userId))?.failed_authentications).toBe(1)
    expect(await ipFailures(p)).toBe(1)
    expect((await authenticate(p, { method_id: phoneId, code })).status).toBe(200)
  })

  it('lets the IP limit count a stale-path failure once: the limit trips at the limit, not before', async () => {
    const p = await project({ ip_failed_auths_per_hour: 2 })
    const { code, phoneId } = await missingRecord(p)
    const attributes = { ip_address: IP }
    for (const guess of [wrong(code), wrong(wrong(code))]) {
      const res = await authenticate(p, { method_id: phoneId, code: guess, attributes })
      expectStytchError(res, 404, 'otp_code_not_found')
    }
    expect(await ipFailures(p)).toBe(2)
    expectStytchError(await authenticate(p, { method_id: phoneId, code, attributes }), 429, 'too_many_requests')
    expect(await dbGate(phoneId)).toMatchObject({ attempts: 2, consumed_at: null })
  })

  it('keeps a keyed hash in the gate: never the code, not the KV hash', async () => {
    const p = await project()
    const { code, phoneId } = await loginCode(p, PHONE)
    const row = await env.DB.prepare('SELECT mac FROM otp_codes WHERE phone_id = ?1')
      .bind(phoneId)
      .first<{ mac: string }>()
    const stored = await env.OTP_KV.get<StoredCode>(`otp:${phoneId}`, 'json')
    expect(row?.mac).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(row?.mac).not.toContain(code)
    expect(row?.mac).not.toBe(stored?.mac)
  })
})

describe('storage operations of authenticate under a lagging KV', () => {
  it('normal path: 1 KV read, 1 D1 round trip', async () => {
    const p = await project()
    await warm(p)
    const { code, phoneId } = await loginCode(p, PHONE)
    const o = await counted(p, { method_id: phoneId, code })
    expect(o.res.status).toBe(200)
    expect([o.kvGets, o.d1, o.kvDeletes, o.kvPuts]).toEqual([[`otp:${phoneId}`], 1, [], []])
  })

  it('stale record, right code: 1 KV read, 2 D1 round trips', async () => {
    const p = await project()
    await warm(p)
    const { second, phoneId } = await reorderedWrite(p)
    const o = await counted(p, { method_id: phoneId, code: second.code })
    expect(o.res.status).toBe(200)
    expect([o.kvGets, o.d1, o.kvDeletes, o.kvPuts]).toEqual([[`otp:${phoneId}`], 2, [], []])
  })

  it('missing record: right code 1 KV read, 2 D1; wrong code 1 KV read, 2 D1', async () => {
    const p = await project()
    await warm(p)
    const { code, phoneId } = await missingRecord(p)
    const bad = await counted(p, { method_id: phoneId, code: wrong(code) })
    expectStytchError(bad.res, 404, 'otp_code_not_found')
    expect([bad.kvGets, bad.d1, bad.kvDeletes, bad.kvPuts]).toEqual([[`otp:${phoneId}`], 2, [], []])
    const good = await counted(p, { method_id: phoneId, code })
    expect(good.res.status).toBe(200)
    expect([good.kvGets, good.d1, good.kvDeletes, good.kvPuts]).toEqual([[`otp:${phoneId}`], 2, [], []])
  })
})
