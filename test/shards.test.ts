import { createScheduledController } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import { sha256, toHex } from '../src/crypto'
import { clearProjectCache } from '../src/db/projects'
import { DeliveryJobSchema } from '../src/delivery/job'
import worker from '../src/index'
import { MOVE_PAUSE_GRACE_MS } from '../src/shards/pause'
import {
  call,
  callJson,
  capturingQueue,
  expectStytchError,
  issueCode,
  LENIENT_LIMITS,
  newProject,
  type TestProject,
} from './helpers'
import { authenticate } from './otp-helpers'
import { sdkCall } from './sdk-helpers'
import { sessionsAuthenticate, sessionsRevoke } from './session-helpers'
import { DIRECTORY_READ, PROJECT_TABLES, projectCounts, recordingShards } from './shard-helpers'
import { messageSid, SMS_TEST_SETTINGS, signTwilio, twilioCreated, twilioEnv } from './sms-helpers'
import {
  DEAD_LETTER_QUEUE,
  freshPhone,
  metaEnv,
  metaSuccess,
  runQueue,
  signWebhook,
  statusPayload,
} from './whatsapp-helpers'

/**
 * Projects on two D1 shards (DB: shard 0 and the directory; DB_1: shard 1). A project's rows live in
 * the shard its directory record names, and nothing a project does reads or writes the other shard:
 * its requests, its deliveries, its sessions and keys, its status webhooks. What works across shards
 * works across them: the hourly run, and statuses whose send recorded no shard.
 */

const onShard = (shard: number, settings: Record<string, unknown> = {}) =>
  newProject('test', { ...LENIENT_LIMITS, ...settings }, shard)

/** Everything a project does in a day, through the real Worker on bindings `e`. */
async function useEverything(p: TestProject & { publicToken: string }, e: Env) {
  const phone = freshPhone()
  // A code, delivered by the consumer (the console provider keeps it in the project's dev outbox).
  const issued = await issueCode(p, { phone_number: phone }, { env: e, deliver: false })
  const delivered = await runQueue([issued.job], { env: e })
  expect(delivered.result.explicitAcks).toEqual(delivered.ids)
  const outbox = await callJson<{ messages: { code: string }[] }>(
    'GET',
    `/dev/outbox?phone_number=${encodeURIComponent(phone)}`,
    { project: p, env: e },
  )
  expect(outbox.body.messages.map((m) => m.code)).toEqual([issued.code])
  // The login, its session by token and by JWT, the user read, updated and searched for.
  const auth = await authenticate(
    p,
    { method_id: issued.phoneId, code: issued.code, session_duration_minutes: 60 },
    { env: e },
  )
  expect(auth.status, JSON.stringify(auth.body)).toBe(200)
  const token = String(auth.body.session_token)
  const jwt = String(auth.body.session_jwt)
  expect((await sessionsAuthenticate(p, { session_jwt: jwt }, { env: e })).status).toBe(200)
  expect((await sessionsAuthenticate(p, { session_token: token }, { env: e })).status).toBe(200)
  const userId = issued.userId
  const updated = await callJson('PUT', `/v1/users/${userId}`, {
    project: p,
    env: e,
    body: { untrusted_metadata: { plan: 'pro' } },
  })
  expect(updated.status).toBe(200)
  const found = await callJson<{ results: unknown[] }>('POST', '/v1/users/search', {
    project: p,
    env: e,
    body: { limit: 10 },
  })
  expect(found.body.results).toHaveLength(1)
  expect((await callJson('GET', `/v1/users/${userId}`, { project: p, env: e })).status).toBe(200)
  // The frontend SDK's view of the same session, and the public keys.
  expect((await sdkCall('GET', '/users/me', p, { session: token, env: e })).status).toBe(200)
  const keys = await callJson<{ keys: unknown[] }>('GET', `/v1/sessions/jwks/${p.id}`, { project: null, env: e })
  expect(keys.body.keys).toHaveLength(1)
  // A second number sent a code with /send, then the session revoked.
  const second = await issueCode(
    p,
    { phone_number: freshPhone(), user_id: userId },
    { env: e, path: 'send', deliver: false },
  )
  expect(second.userId).toBe(userId)
  expect((await sessionsRevoke(p, { session_token: token }, { env: e })).status).toBe(200)
}

describe('isolation between shards', () => {
  it('a project on shard 0 never reads or writes shard 1, and one on shard 1 reads only its record from shard 0', async () => {
    const zero = await onShard(0)
    const one = await onShard(1)

    const first = recordingShards()
    await useEverything(zero, first.env)
    expect(first.shard0.length).toBeGreaterThan(10)
    expect(first.shard1).toEqual([])

    const second = recordingShards()
    await useEverything(one, second.env)
    expect(second.shard1.length).toBeGreaterThan(10)
    expect(second.shard0.filter((sql) => !DIRECTORY_READ.test(sql))).toEqual([])

    // Every row is in the project's own shard, none in the other.
    const expected = { users: 1, phones: 2, otp_codes: 2, sessions: 0, session_signing_keys: 1, deliveries: 2 }
    expect(await projectCounts(env.DB, zero.id)).toMatchObject(expected)
    expect(await projectCounts(env.DB_1, one.id)).toMatchObject(expected)
    for (const [db, p] of [
      [env.DB_1, zero],
      [env.DB, one],
    ] as const) {
      expect(Object.values(await projectCounts(db, p.id))).toEqual(PROJECT_TABLES.map(() => 0))
    }
  })

  it('the dead-letter queue records a job exhausted in its project shard', async () => {
    const one = await onShard(1)
    const { job } = await issueCode(one, { phone_number: freshPhone() }, { deliver: false })
    const recorded = recordingShards()
    const { result, ids } = await runQueue([job], { env: recorded.env, queue: DEAD_LETTER_QUEUE })
    expect(result.explicitAcks).toEqual(ids)
    const row = await env.DB_1.prepare('SELECT status, error_detail FROM deliveries WHERE id = ?1').bind(job.id).first()
    expect(row).toEqual({ status: 'failed', error_detail: 'retries_exhausted' })
    expect(recorded.shard0.filter((sql) => !DIRECTORY_READ.test(sql))).toEqual([])
  })

  it('the hourly run purges and re-seals every shard, each logged with its shard', async () => {
    const zero = await onShard(0)
    const one = await onShard(1)
    const T = Date.now()
    // An expired session in each shard, and a delivery past the retention period.
    for (const [db, p] of [
      [env.DB, zero],
      [env.DB_1, one],
    ] as const) {
      const userId = `user-test-${crypto.randomUUID()}`
      await db.batch([
        db
          .prepare(`INSERT INTO users (id, project_id, status, created_at) VALUES (?1, ?2, 'active', ?3)`)
          .bind(userId, p.id, T),
        db
          .prepare(
            `INSERT INTO sessions (id, project_id, user_id, token_hash, started_at, last_accessed_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)`,
          )
          .bind(
            `session-test-${crypto.randomUUID()}`,
            p.id,
            userId,
            toHex(await sha256(crypto.randomUUID())),
            T - 7_200_000,
            T - 60_000,
          ),
        db
          .prepare(
            `INSERT INTO deliveries (id, project_id, phone_id, status, expires_at, created_at, updated_at)
             VALUES (?1, ?2, 'phone-number-test-x', 'sent', ?3, ?3, ?3)`,
          )
          .bind(crypto.randomUUID(), p.id, T - 40 * 86_400_000),
      ])
    }
    const log = vi.spyOn(console, 'log')
    await worker.scheduled(createScheduledController({ scheduledTime: T, cron: '17 * * * *' }), env)
    const lines = log.mock.calls.map((c) => JSON.parse(String(c[0])) as Record<string, unknown>)
    const purged = lines.filter((l) => l.event === 'retention.purged')
    expect(purged.map((l) => [l.shard, l.sessions, l.deliveries])).toEqual([
      [0, 1, 1],
      [1, 1, 1],
    ])
    expect(lines.filter((l) => l.event === 'session_seal.resealed').map((l) => l.shard)).toEqual([0, 1])
    for (const [db, p] of [
      [env.DB, zero],
      [env.DB_1, one],
    ] as const) {
      expect(await projectCounts(db, p.id)).toMatchObject({ sessions: 0, deliveries: 0 })
    }
  })

  it('a project recorded on a shard the Worker has no binding for fails loudly, reading no other shard', async () => {
    const p = await onShard(0)
    await env.DB.prepare('UPDATE projects SET shard = 7 WHERE id = ?1').bind(p.id).run()
    clearProjectCache()
    const error = vi.spyOn(console, 'error')
    const recorded = recordingShards()
    const res = await callJson('POST', '/v1/otps/whatsapp/login_or_create', {
      project: p,
      env: recorded.env,
      body: { phone_number: freshPhone() },
    })
    expectStytchError(res, 500, 'internal_server_error')
    expect(error.mock.calls.map((c) => String(c[0])).join('\n')).toContain('"event":"shard.binding_missing"')
    expect(recorded.shard0.filter((sql) => !DIRECTORY_READ.test(sql))).toEqual([])
    expect(recorded.shard1).toEqual([])
  })
})

/** A WhatsApp job of a project on `shard`, sent through the mocked Graph API: its wamid and the request's callback data. */
async function sentThroughMeta(p: TestProject) {
  const { job } = await issueCode(p, { phone_number: freshPhone() }, { deliver: false })
  const wamid = `wamid.${crypto.randomUUID()}`
  const fetchSpy = vi.spyOn(globalThis, 'fetch').mockResolvedValueOnce(metaSuccess(wamid))
  await runQueue([job], { env: metaEnv() })
  const body = JSON.parse(String(fetchSpy.mock.calls[0]?.[1]?.body)) as Record<string, unknown>
  fetchSpy.mockRestore()
  return { job, wamid, callbackData: body.biz_opaque_callback_data }
}

async function postMetaStatus(e: Env, status: Record<string, unknown>) {
  const body = JSON.stringify(statusPayload([status as { id: string; status: string }]))
  return call('POST', '/v1/webhooks/whatsapp', {
    project: null,
    env: e,
    rawBody: body,
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': await signWebhook(body) },
  })
}

const deliveryStatus = (db: D1Database, id: string) =>
  db.prepare('SELECT status FROM deliveries WHERE id = ?1').bind(id).first<{ status: string }>()

const updatesDeliveries = (sql: string[]) => sql.filter((s) => s.startsWith('UPDATE deliveries'))

describe('status webhooks on several shards', () => {
  it('Meta: a status is routed by the shard its send recorded in biz_opaque_callback_data, alone', async () => {
    const one = await onShard(1)
    const { job, wamid, callbackData } = await sentThroughMeta(one)
    expect(callbackData).toBe('shard=1')
    const recorded = recordingShards(metaEnv())
    const res = await postMetaStatus(recorded.env, {
      id: wamid,
      status: 'delivered',
      biz_opaque_callback_data: callbackData,
    })
    expect(res.status).toBe(200)
    expect(await deliveryStatus(env.DB_1, job.id)).toEqual({ status: 'delivered' })
    expect(updatesDeliveries(recorded.shard1)).toHaveLength(1)
    // Shard 0 is asked whether any project is moving, and for the project's record: nothing else.
    expect(updatesDeliveries(recorded.shard0)).toEqual([])
    expect(recorded.shard0.every((sql) => sql.includes('FROM projects'))).toBe(true)
  })

  it.each([
    ['without callback data (a message sent before shards)', undefined, false],
    ['routed to a shard where it moves nothing (its project moved since)', 'shard=0', false],
    ['while any project moves between shards', 'shard=1', true],
  ])('Meta: a status %s is applied on every shard', async (_case, callbackData, moving) => {
    const one = await onShard(1)
    const { job, wamid } = await sentThroughMeta(one)
    const mover = await onShard(0)
    const setMove = (to: number | null) =>
      env.DB.prepare('UPDATE projects SET move_from = ?2, move_to = ?2, move_step = ?3 WHERE id = ?1')
        .bind(mover.id, to, to === null ? null : 'started')
        .run()
    if (moving) await setMove(1)
    clearProjectCache()
    const recorded = recordingShards(metaEnv())
    const status = {
      id: wamid,
      status: 'delivered',
      ...(callbackData ? { biz_opaque_callback_data: callbackData } : {}),
    }
    expect((await postMetaStatus(recorded.env, status)).status).toBe(200)
    expect(await deliveryStatus(env.DB_1, job.id)).toEqual({ status: 'delivered' })
    expect(updatesDeliveries(recorded.shard0)).toHaveLength(1)
    expect(updatesDeliveries(recorded.shard1)).toHaveLength(1)
    await setMove(null)
    clearProjectCache()
  })

  const CALLBACK = 'https://otp.example.com/v1/webhooks/twilio'

  /** An SMS of a project on `shard`, sent through the mocked Twilio API: its SID and the StatusCallback it named. */
  async function sentThroughTwilio(p: TestProject) {
    const { job } = await issueCode(p, { phone_number: freshPhone() }, { channel: 'sms', deliver: false })
    const sid = messageSid()
    const fetchSpy = vi.spyOn(globalThis, 'fetch').mockResolvedValueOnce(twilioCreated(sid))
    await runQueue([job], { env: twilioEnv({ TWILIO_STATUS_CALLBACK_URL: CALLBACK }) })
    const form = new URLSearchParams(String(fetchSpy.mock.calls[0]?.[1]?.body))
    fetchSpy.mockRestore()
    return { job, sid, statusCallback: form.get('StatusCallback') }
  }

  /** A status callback as Twilio posts it to `url` (the StatusCallback), signed over that URL. */
  async function postTwilio(e: Env, url: string, sid: string, status: string) {
    const params = new URLSearchParams({ MessageSid: sid, MessageStatus: status, AccountSid: env.TWILIO_ACCOUNT_SID })
    const local = new URL(url)
    const path = `${local.pathname}${local.search}`
    return call('POST', path, {
      project: null,
      env: e,
      rawBody: params.toString(),
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-twilio-signature': await signTwilio(`http://localhost${path}`, params),
      },
    })
  }

  it('Twilio: a status is routed by the shard in its StatusCallback URL, alone, and the URL is signed with it', async () => {
    const one = await onShard(1, SMS_TEST_SETTINGS)
    const { job, sid, statusCallback } = await sentThroughTwilio(one)
    expect(statusCallback).toBe(`${CALLBACK}?shard=1`)
    const recorded = recordingShards(twilioEnv())
    expect((await postTwilio(recorded.env, statusCallback ?? '', sid, 'delivered')).status).toBe(200)
    expect(await deliveryStatus(env.DB_1, job.id)).toEqual({ status: 'delivered' })
    expect(updatesDeliveries(recorded.shard1)).toHaveLength(1)
    expect(updatesDeliveries(recorded.shard0)).toEqual([])
    // The shard is part of what Twilio signs: a callback sent to another shard's URL is refused.
    const params = new URLSearchParams({ MessageSid: sid, MessageStatus: 'failed', AccountSid: env.TWILIO_ACCOUNT_SID })
    const forged = await call('POST', '/v1/webhooks/twilio?shard=0', {
      project: null,
      env: twilioEnv(),
      rawBody: params.toString(),
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-twilio-signature': await signTwilio('http://localhost/v1/webhooks/twilio?shard=1', params),
      },
    })
    expect(forged.status).toBe(401)
    expect(await deliveryStatus(env.DB_1, job.id)).toEqual({ status: 'delivered' })
  })

  it('Twilio: a callback without the shard (no StatusCallback query) is applied on every shard', async () => {
    const one = await onShard(1, SMS_TEST_SETTINGS)
    const { job, sid } = await sentThroughTwilio(one)
    const recorded = recordingShards(twilioEnv())
    expect((await postTwilio(recorded.env, CALLBACK, sid, 'undelivered')).status).toBe(200)
    expect(await deliveryStatus(env.DB_1, job.id)).toEqual({ status: 'failed' })
    expect(updatesDeliveries(recorded.shard0)).toHaveLength(1)
    expect(updatesDeliveries(recorded.shard1)).toHaveLength(1)
  })
})

describe('a project paused by its move', () => {
  /** Marks the project as moving with its pause started `agoMs` ago (what `npm run project:move` records). */
  async function pause(p: TestProject, agoMs: number) {
    await env.DB.prepare(
      `UPDATE projects SET move_from = 0, move_to = 1, move_step = 'paused', move_pause_at = ?2 WHERE id = ?1`,
    )
      .bind(p.id, Date.now() - agoMs)
      .run()
    clearProjectCache()
  }
  async function unpause(p: TestProject) {
    await env.DB.prepare(
      'UPDATE projects SET move_from = NULL, move_to = NULL, move_step = NULL, move_pause_at = NULL WHERE id = ?1',
    )
      .bind(p.id)
      .run()
    clearProjectCache()
  }

  it('answers its API and SDK requests 503 with Retry-After, changing nothing; other projects are served', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(Date.parse('2026-12-01T10:00:00Z'))
    const p = await onShard(0)
    const other = await onShard(0)
    await pause(p, 1_000)
    const before = await projectCounts(env.DB, p.id)
    const res = await callJson('POST', '/v1/otps/whatsapp/login_or_create', {
      project: p,
      body: { phone_number: freshPhone() },
    })
    expectStytchError(res, 503, 'service_unavailable')
    // The grace (the pause started 1 s ago) and the copy after it.
    expect(Number(res.headers.get('retry-after'))).toBe(Math.ceil((MOVE_PAUSE_GRACE_MS - 1_000) / 1000) + 2)
    const sdk = await sdkCall('POST', '/otps/whatsapp/login_or_create', p, { body: { phone_number: freshPhone() } })
    expectStytchError(sdk, 503, 'service_unavailable')
    expect(await projectCounts(env.DB, p.id)).toEqual(before)
    expect((await issueCode(other, { phone_number: freshPhone() }, { deliver: false })).status).toBe(200)
    // The public keys stay readable: verifiers never see the move.
    expect((await callJson('GET', `/v1/sessions/jwks/${p.id}`, { project: null })).status).toBe(200)
    await unpause(p)
    expect((await issueCode(p, { phone_number: freshPhone() }, { deliver: false })).status).toBe(200)
  })

  it('keeps its deliveries in the queue until the pause is over, then delivers them', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0)
    const p = await onShard(0)
    const { job, code } = await issueCode(p, { phone_number: freshPhone() }, { deliver: false })
    await pause(p, 20_000)
    const waiting = await runQueue([job])
    expect(waiting.result.explicitAcks).toEqual([])
    // Past the grace: the flip is expected within seconds; later attempts wait longer (backoff).
    expect(waiting.retry[0]).toHaveBeenCalledWith({ delaySeconds: 2 })
    const later = await runQueue([job], { attempts: 4 })
    expect(later.retry[0]).toHaveBeenCalledWith({ delaySeconds: 16 })
    expect(await deliveryStatus(env.DB, job.id)).toEqual({ status: 'queued' })
    await unpause(p)
    const delivered = await runQueue([job])
    expect(delivered.result.explicitAcks).toEqual(delivered.ids)
    const outbox = await env.DB.prepare('SELECT code FROM dev_outbox WHERE id = ?1').bind(job.id).first()
    expect(outbox).toEqual({ code })
  })

  it("leaves a WhatsApp failure's SMS fallback to the consumer until the pause is over", async () => {
    const p = await onShard(0, { ...SMS_TEST_SETTINGS, whatsapp_fallback: 'sms' })
    const { job } = await issueCode(p, { phone_number: freshPhone() }, { deliver: false })
    const wamid = `wamid.${crypto.randomUUID()}`
    vi.spyOn(globalThis, 'fetch').mockResolvedValueOnce(metaSuccess(wamid))
    await runQueue([job], { env: metaEnv() })
    await pause(p, 1_000)
    const sent: unknown[] = []
    const e = metaEnv({ WHATSAPP_QUEUE: capturingQueue(sent) })
    const status = { id: wamid, status: 'failed', errors: [{ code: 131026 }], biz_opaque_callback_data: 'shard=0' }
    expect((await postMetaStatus(e, status)).status).toBe(200)
    // Nothing written for the fallback yet: one job on the queue, marked to start it.
    expect(await projectCounts(env.DB, p.id)).toMatchObject({ deliveries: 1 })
    expect(sent).toHaveLength(1)
    const deferred = DeliveryJobSchema.parse(sent[0])
    expect(deferred).toMatchObject({ id: job.id, channel: 'whatsapp', start_fallback: { error_code: 131026 } })
    // During the pause the consumer keeps it waiting; afterwards it starts the fallback: an SMS job.
    expect((await runQueue([deferred], { env: e })).result.explicitAcks).toEqual([])
    await unpause(p)
    const { result, ids } = await runQueue([deferred], { env: e })
    expect(result.explicitAcks).toEqual(ids)
    expect(sent).toHaveLength(2)
    expect(DeliveryJobSchema.parse(sent[1])).toMatchObject({ channel: 'sms', phone_id: job.phone_id })
    const fallback = await env.DB.prepare('SELECT channel, fallback_of FROM deliveries WHERE fallback_of = ?1')
      .bind(job.id)
      .first()
    expect(fallback).toEqual({ channel: 'sms', fallback_of: job.id })
  })
})
