import { env } from 'cloudflare:workers'
import { beforeAll, describe, expect, it, vi } from 'vitest'
import { DeliveryJobSchema } from '../src/delivery/job'
import { failingKv, failingQueue, type KvOperation } from './fault-env'
import { exchange, expectInternalError, expectNothingChanged, expectWellFormed, jsonPost } from './fuzz-probe'
import { basicAuth } from './helpers'
import { quietConsole } from './log-capture'
import { dbGate, dbPhone, dbUser, project, wrong } from './otp-helpers'
import { capturingQueue, deliveryRow, freshPhone, issueJob, metaEnv, runQueue } from './whatsapp-helpers'

/**
 * KV (and the queue) failing. KV holds only the keyed hash of each phone's live code; D1 is the
 * authority. So a KV failure before the D1 batch must change nothing, one after it must not turn a
 * completed request into an error the client cannot recover from, and in no case may it use up a
 * code, count a wrong guess or lock a user.
 */

beforeAll(() => {
  quietConsole()
})

const healthy = (): Env => ({ ...env, WHATSAPP_QUEUE: capturingQueue([]) })
const withKv = (operations: KvOperation[]): Env => ({ ...healthy(), OTP_KV: failingKv(env.OTP_KV, operations) })

const post = jsonPost

/** The send events (per phone, IP and country) counted in a project. */
const sendEvents = async (projectId: string) =>
  Number(
    (
      await env.DB.prepare(
        `SELECT COALESCE(SUM(n), 0) AS n FROM limit_counters WHERE project_id = ?1 AND kind != 'new_users_per_hour'`,
      )
        .bind(projectId)
        .first<{ n: number }>()
    )?.n,
  )

const userOf = async (phoneId: string) => String((await dbPhone(phoneId))?.user_id)

describe('KV failing during authenticate', () => {
  it('a failed read is a 500 that changes nothing; the same code then logs in', async () => {
    const p = await project({ user_lock_threshold: 1 })
    const { job, code } = await issueJob({ project: p })
    for (const operations of [['get'], ['get', 'getWithMetadata']] satisfies KvOperation[][]) {
      const o = await exchange(post(p, '/v1/otps/authenticate', { method_id: job.phone_id, code }), withKv(operations))
      expectInternalError(o)
      expectNothingChanged(o)
    }
    // A failed read of a wrong guess counts nothing either: with a lock threshold of 1 it would lock.
    const guess = post(p, '/v1/otps/authenticate', { method_id: job.phone_id, code: wrong(code) })
    expectNothingChanged(await exchange(guess, withKv(['get'])))
    expect(await dbUser(await userOf(job.phone_id))).toMatchObject({ failed_authentications: 0, locked_until: null })

    const ok = await exchange(post(p, '/v1/otps/authenticate', { method_id: job.phone_id, code }))
    expect(expectWellFormed(ok)).toBeNull()
  })

  it('a failed delete after the code was consumed still answers 200; the stale record cannot log in again', async () => {
    const p = await project()
    const { job, code } = await issueJob({ project: p })
    const o = await exchange(post(p, '/v1/otps/authenticate', { method_id: job.phone_id, code }), withKv(['delete']))
    expect(expectWellFormed(o)).toBeNull()
    expect(o.json?.user).toMatchObject({
      status: 'active',
      phone_numbers: [{ phone_id: job.phone_id, verified: true }],
    })
    // KV still has the record; D1's gate is consumed, so presenting the code again fails.
    expect(await env.OTP_KV.get(`otp:${job.phone_id}`)).not.toBeNull()
    const consumed = await dbGate(job.phone_id)
    expect(consumed).toMatchObject({ consumed_at: expect.any(Number), consumed_by: expect.any(String) })
    // The replay is sequential, so only the gate's consumed_at stands between it and a second login.
    const replay = await exchange(post(p, '/v1/otps/authenticate', { method_id: job.phone_id, code }))
    expect(expectWellFormed(replay)).toBe('unable_to_auth_otp_code')
    expect(await dbGate(job.phone_id)).toEqual(consumed)
  })
})

describe('KV or the queue failing while a code is issued', () => {
  it('a failed KV write is a 500 whose job, queued alongside, is never delivered; the retry sends a code that logs in', async () => {
    const p = await project()
    const phoneNumber = freshPhone()
    const request = post(p, '/v1/otps/whatsapp/login_or_create', { phone_number: phoneNumber })
    const failed = await exchange(request, withKv(['put']))
    expectInternalError(failed)
    // The job went out together with the KV write; the undo closed its delivery, so the consumer drops it.
    expect(failed.queueSends).toHaveLength(1)
    const dropped = DeliveryJobSchema.parse(failed.queueSends[0])
    expect(await deliveryRow(dropped.id)).toMatchObject({
      status: 'failed',
      error_detail: 'enqueue_failed',
      attempts: 0,
    })

    const sent: unknown[] = []
    const retry = await exchange(request, { ...env, WHATSAPP_QUEUE: capturingQueue(sent) })
    expect(expectWellFormed(retry)).toBeNull()
    expect(sent).toHaveLength(1)
  })

  it('a failed read of the replaced code (superseded history) does not fail the send', async () => {
    const p = await project()
    const first = await issueJob({ project: p })
    const o = await exchange(
      post(p, '/v1/otps/whatsapp/login_or_create', { phone_number: first.phoneNumber }),
      withKv(['get']),
    )
    expect(expectWellFormed(o)).toBeNull()
    expect(o.queueSends).toHaveLength(1)
    expect(o.kvPuts).toEqual([`otp:${first.job.phone_id}`])
  })

  it('a queue outage is a 500; the delivery is closed, a copy that did reach the queue is not sent', async () => {
    const fetchSpy = vi.spyOn(globalThis, 'fetch').mockRejectedValue(new Error('unexpected fetch'))
    const p = await project()
    const phoneNumber = freshPhone()
    // The send reached the queue but the producer reported a failure: the ambiguous case.
    const sent: unknown[] = []
    const ambiguous: Queue = {
      ...capturingQueue(sent),
      send: async (body) => {
        sent.push(body)
        throw new Error('Queue send failed: 504 Gateway Timeout')
      },
    }
    const failed = await exchange(post(p, '/v1/otps/whatsapp/login_or_create', { phone_number: phoneNumber }), {
      ...env,
      WHATSAPP_QUEUE: ambiguous,
    })
    expectInternalError(failed)
    const job = DeliveryJobSchema.parse(sent[0])
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'failed', error_detail: 'enqueue_failed', attempts: 0 })
    expect(await sendEvents(p.id)).toBe(0)

    const late = await runQueue([job], { env: metaEnv() })
    expect(late.result.explicitAcks).toEqual(late.ids)
    expect(fetchSpy).not.toHaveBeenCalled()
    fetchSpy.mockRestore()

    const retried = await issueJob({ project: p, phoneNumber })
    const ok = await exchange(post(p, '/v1/otps/authenticate', { method_id: retried.job.phone_id, code: retried.code }))
    expect(expectWellFormed(ok)).toBeNull()
  })

  it.each([
    ['login_or_create', 'KV write', (): Env => withKv(['put'])],
    ['login_or_create', 'queue send', (): Env => ({ ...env, WHATSAPP_QUEUE: failingQueue() })],
    ['send', 'KV write', (): Env => withKv(['put'])],
    ['send', 'queue send', (): Env => ({ ...env, WHATSAPP_QUEUE: failingQueue() })],
  ])('with the default limits, %s whose %s failed does not hold back the retry', async (route, _what, broken) => {
    // Default settings: one send per phone per 30 s. A send whose code never left must not use it up.
    const p = await project({ phone_send_cooldown_seconds: 30, phone_sends_per_hour: 5, phone_sends_per_day: 10 })
    const phoneNumber = freshPhone()
    if (route === 'send') {
      await issueJob({ project: p, phoneNumber })
      await env.DB.prepare('DELETE FROM limit_counters WHERE project_id = ?1').bind(p.id).run()
    }
    const request = post(p, `/v1/otps/whatsapp/${route}`, {
      phone_number: phoneNumber,
      attributes: { ip_address: '2001:db8::1' },
    })
    expectInternalError(await exchange(request, broken()))
    expect(await sendEvents(p.id)).toBe(0)
    const retry = await exchange(request)
    expect(expectWellFormed(retry)).toBeNull()
    expect(retry.queueSends).toHaveLength(1)
    // The successful send does count: the next one within 30 s is refused.
    expect(expectWellFormed(await exchange(request))).toBe('too_many_requests')
  })
})

describe('KV failing while users and phones are deleted', () => {
  it('DELETE /v1/users/{user_id} answers 200 when dropping the code records fails; the user is gone', async () => {
    const p = await project()
    const { job, code } = await issueJob({ project: p })
    const userId = await userOf(job.phone_id)
    const o = await exchange(
      { method: 'DELETE', path: `/v1/users/${userId}`, headers: { authorization: basicAuth(p) } },
      withKv(['delete']),
    )
    expect(expectWellFormed(o)).toBeNull()
    expect(await dbUser(userId)).toBeNull()
    const stale = await exchange(post(p, '/v1/otps/authenticate', { method_id: job.phone_id, code }))
    expect(expectWellFormed(stale)).toBe('phone_number_not_found')
  })

  it('DELETE /v1/users/phone_numbers/{phone_id} answers 200 when dropping the code record fails', async () => {
    const p = await project()
    const { job, code } = await issueJob({ project: p })
    const o = await exchange(
      { method: 'DELETE', path: `/v1/users/phone_numbers/${job.phone_id}`, headers: { authorization: basicAuth(p) } },
      withKv(['delete']),
    )
    expect(expectWellFormed(o)).toBeNull()
    expect(await dbPhone(job.phone_id)).toBeNull()
    const stale = await exchange(post(p, '/v1/otps/authenticate', { method_id: job.phone_id, code }))
    expect(expectWellFormed(stale)).toBe('phone_number_not_found')
  })
})
