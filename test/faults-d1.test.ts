import { env } from 'cloudflare:workers'
import { beforeAll, describe, expect, it } from 'vitest'
import { failingBatchDb, failingStatementDb } from './fault-env'
import {
  exchange,
  expectInternalError,
  expectNothingChanged,
  expectWellFormed,
  type FuzzRequest,
  jsonPost,
  type Outcome,
} from './fuzz-probe'
import { basicAuth, type TestProject } from './helpers'
import { quietConsole } from './log-capture'
import { dbGate, dbUser, project, wrong } from './otp-helpers'
import { capturingQueue, freshPhone, issueJob, signWebhook, statusPayload } from './whatsapp-helpers'

/**
 * D1 failing in the middle of a request. Every batch a request runs is broken at every position in
 * turn: a statement that fails at run time is inserted before statement 0, 1, …, n, so the
 * statements before it have already run inside the transaction when it fails; and once more with
 * the batch call itself rejecting. Each time the reply must be a plain 500 JSON and every table, KV
 * key and queue must be exactly as before (D1 rolled the batch back, nothing ran after it). Then the
 * same request against a healthy database must work: the client can simply retry.
 */

beforeAll(() => {
  // Every injected failure is logged by app.onError with its stack; the leak check still reads them.
  quietConsole()
})

const healthy = (): Env => ({ ...env, WHATSAPP_QUEUE: capturingQueue([]) })
const withDb = (db: D1Database): Env => ({ ...healthy(), DB: db })

const post = jsonPost

const del = (p: TestProject, path: string): FuzzRequest => ({
  method: 'DELETE',
  path,
  headers: { authorization: basicAuth(p) },
})

const userOf = async (phoneId: string) =>
  String(
    (await env.DB.prepare('SELECT user_id FROM phones WHERE id = ?1').bind(phoneId).first<{ user_id: string }>())
      ?.user_id,
  )

interface Scenario {
  request: FuzzRequest
  /** Checks the healthy retry's outcome. */
  retried: (o: Outcome) => Promise<void> | void
}

/** Breaks the request's first batch at every position, then retries it on a healthy database. */
async function breakEveryStatement(scenario: Scenario): Promise<number> {
  const probe = failingBatchDb(env.DB, 'throw')
  const lost = await exchange(scenario.request, withDb(probe.db))
  expectInternalError(lost)
  expectNothingChanged(lost)
  const statements = probe.lengths[0] ?? 0
  expect(statements).toBeGreaterThan(0)
  for (let position = 0; position <= statements; position++) {
    const o = await exchange(scenario.request, withDb(failingBatchDb(env.DB, position).db))
    expectInternalError(o)
    expectNothingChanged(o)
  }
  await scenario.retried(await exchange(scenario.request))
  return statements
}

describe('a D1 failure in the middle of a request: 500 JSON, no partial state, the retry works', () => {
  it('login_or_create for a new number (user, phone, code, delivery, limit events in one batch)', async () => {
    const p = await project()
    const phoneNumber = freshPhone()
    const statements = await breakEveryStatement({
      request: post(p, '/v1/otps/whatsapp/login_or_create', { phone_number: phoneNumber }),
      retried: (o) => {
        expect(expectWellFormed(o)).toBeNull()
        expect(o.json?.user_created).toBe(true)
        expect(o.queueSends).toHaveLength(1)
      },
    })
    expect(statements).toBeGreaterThanOrEqual(8)
  })

  it('login_or_create for a number with a live code (the replaced code keeps working until a send succeeds)', async () => {
    const p = await project()
    const first = await issueJob({ project: p })
    await breakEveryStatement({
      request: post(p, '/v1/otps/whatsapp/login_or_create', { phone_number: first.phoneNumber }),
      retried: (o) => {
        expect(expectWellFormed(o)).toBeNull()
        expect(o.json?.user_created).toBe(false)
      },
    })
  })

  it('a failed send leaves the live code usable', async () => {
    const p = await project()
    const first = await issueJob({ project: p })
    const broken = await exchange(
      post(p, '/v1/otps/whatsapp/send', { phone_number: first.phoneNumber }),
      withDb(failingBatchDb(env.DB, 4).db),
    )
    expectInternalError(broken)
    const auth = await exchange(post(p, '/v1/otps/authenticate', { method_id: first.job.phone_id, code: first.code }))
    expect(expectWellFormed(auth)).toBeNull()
  })

  it('send attaching a new number to an existing user', async () => {
    const p = await project()
    const owner = await issueJob({ project: p })
    const userId = await userOf(owner.job.phone_id)
    await breakEveryStatement({
      request: post(p, '/v1/otps/whatsapp/send', { phone_number: freshPhone(), user_id: userId }),
      retried: (o) => {
        expect(expectWellFormed(o)).toBeNull()
        expect(o.json?.user_id).toBe(userId)
      },
    })
  })

  it('authenticate with the right code: nothing is consumed, the same code then logs in', async () => {
    const p = await project()
    const { job, code } = await issueJob({ project: p })
    await breakEveryStatement({
      request: post(p, '/v1/otps/authenticate', {
        method_id: job.phone_id,
        code,
        attributes: { ip_address: '203.0.113.7' },
      }),
      retried: async (o) => {
        expect(expectWellFormed(o)).toBeNull()
        expect(o.json?.user).toMatchObject({ phone_numbers: [{ phone_id: job.phone_id, verified: true }] })
        expect(await dbGate(job.phone_id)).toMatchObject({ attempts: 0, consumed_at: expect.any(Number) })
      },
    })
  })

  it('authenticate with a wrong code: no attempt, failure or IP event is counted by a failed request', async () => {
    const p = await project()
    const { job, code } = await issueJob({ project: p })
    const userId = await userOf(job.phone_id)
    await breakEveryStatement({
      request: post(p, '/v1/otps/authenticate', {
        method_id: job.phone_id,
        code: wrong(code),
        attributes: { ip_address: '203.0.113.8' },
      }),
      retried: async (o) => {
        expect(expectWellFormed(o)).toBe('otp_code_not_found')
        expect(await dbGate(job.phone_id)).toMatchObject({ attempts: 1, consumed_at: null })
        expect(await dbUser(userId)).toMatchObject({ failed_authentications: 1, locked_until: null })
      },
    })
  })

  it('authenticate starting a session: no session, no consumed code; the retry starts exactly one', async () => {
    const p = await project()
    const { job, code } = await issueJob({ project: p })
    await breakEveryStatement({
      request: post(p, '/v1/otps/authenticate', { method_id: job.phone_id, code, session_duration_minutes: 60 }),
      retried: async (o) => {
        expect(expectWellFormed(o)).toBeNull()
        expect(o.json?.session_token).toEqual(expect.any(String))
        expect(o.after.tables.sessions?.rows).toBe((o.before.tables.sessions?.rows ?? 0) + 1)
      },
    })
  })

  it('POST /v1/sessions/authenticate extending a session: its expiry is unchanged until the retry', async () => {
    const p = await project()
    const { job, code } = await issueJob({ project: p })
    const login = await exchange(
      post(p, '/v1/otps/authenticate', { method_id: job.phone_id, code, session_duration_minutes: 60 }),
    )
    const token = String(login.json?.session_token)
    await breakEveryStatement({
      request: post(p, '/v1/sessions/authenticate', { session_token: token, session_duration_minutes: 600 }),
      retried: (o) => {
        expect(expectWellFormed(o)).toBeNull()
        expect(o.json?.session_token).toBe(token)
      },
    })
  })

  it('DELETE /v1/users/{user_id}', async () => {
    const p = await project()
    const { job } = await issueJob({ project: p })
    const userId = await userOf(job.phone_id)
    await breakEveryStatement({
      request: del(p, `/v1/users/${userId}`),
      retried: async (o) => {
        expect(expectWellFormed(o)).toBeNull()
        expect(await dbUser(userId)).toBeNull()
      },
    })
  })

  it('DELETE /v1/users/phone_numbers/{phone_id}', async () => {
    const p = await project()
    const { job } = await issueJob({ project: p })
    await breakEveryStatement({
      request: del(p, `/v1/users/phone_numbers/${job.phone_id}`),
      retried: async (o) => {
        expect(expectWellFormed(o)).toBeNull()
        expect(await dbGate(job.phone_id)).toBeNull()
      },
    })
  })

  it('a status webhook: 500 (so Meta redelivers it) and no status applied, then applied once', async () => {
    const p = await project()
    const { job } = await issueJob({ project: p })
    await env.DB.prepare(`UPDATE deliveries SET status = 'sent', wamid = 'wamid.fault' WHERE id = ?1`)
      .bind(job.id)
      .run()
    const body = JSON.stringify(statusPayload([{ id: 'wamid.fault', status: 'delivered' }]))
    await breakEveryStatement({
      request: {
        method: 'POST',
        path: '/v1/webhooks/whatsapp',
        headers: { 'x-hub-signature-256': await signWebhook(body) },
        body,
      },
      retried: async (o) => {
        expect(expectWellFormed(o)).toBeNull()
        const row = await env.DB.prepare('SELECT status FROM deliveries WHERE id = ?1').bind(job.id).first()
        expect(row).toEqual({ status: 'delivered' })
      },
    })
  })
})

describe('a D1 failure outside a batch', () => {
  it('POST /v1/sessions/revoke failing is a 500 and the session still works; the retry revokes it', async () => {
    const p = await project()
    const { job, code } = await issueJob({ project: p })
    const login = await exchange(
      post(p, '/v1/otps/authenticate', { method_id: job.phone_id, code, session_duration_minutes: 60 }),
    )
    const token = String(login.json?.session_token)
    const revoke = post(p, '/v1/sessions/revoke', { session_token: token })
    const o = await exchange(revoke, withDb(failingStatementDb(env.DB, /DELETE FROM sessions/)))
    expectInternalError(o)
    expectNothingChanged(o)
    expect(expectWellFormed(await exchange(post(p, '/v1/sessions/authenticate', { session_token: token })))).toBeNull()
    expect(expectWellFormed(await exchange(revoke))).toBeNull()
    expect(expectWellFormed(await exchange(post(p, '/v1/sessions/authenticate', { session_token: token })))).toBe(
      'session_not_found',
    )
  })

  it('the project lookup failing on a cold isolate is a 500, not a 401, and changes nothing', async () => {
    const p = await project()
    // A project not yet cached: its lookup is the request's first D1 call.
    const cold = { ...p, id: `project-test-${crypto.randomUUID()}` }
    const request = post(cold, '/v1/otps/whatsapp/login_or_create', { phone_number: freshPhone() })
    const o = await exchange(request, withDb(failingStatementDb(env.DB, /FROM projects/)))
    expectInternalError(o)
    expectNothingChanged(o)
  })
})
