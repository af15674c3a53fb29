import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest'
import { LEASE_SQL, SENT_SQL } from '../src/db/deliveries'
import { backoffSeconds } from '../src/delivery/consumer'
import { LEASE_MS } from '../src/delivery/deliveries'
import { queryPlan } from './helpers'
import { deliveryRow, issueJob, metaEnv, metaError, metaSuccess, runQueue } from './whatsapp-helpers'

let fetchSpy: MockInstance<typeof fetch>

beforeEach(() => {
  fetchSpy = vi.spyOn(globalThis, 'fetch').mockRejectedValue(new Error('unexpected fetch'))
  vi.spyOn(Math, 'random').mockReturnValue(0)
})

describe('idempotency: Queues deliver at least once', () => {
  it('does not send a job again when it is redelivered after a successful send', async () => {
    const { job } = await issueJob()
    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.once'))
    await runQueue([job], { env: metaEnv() })

    const again = await runQueue([job], { env: metaEnv(), attempts: 2 })

    expect(fetchSpy).toHaveBeenCalledTimes(1)
    expect(again.result.explicitAcks).toEqual(again.ids)
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'sent', wamid: 'wamid.once', attempts: 1 })
  })

  it('sends once when two copies of a job arrive together; the other waits out the lease', async () => {
    const { job } = await issueJob()
    // The Graph API answers only once the other copy has been told to wait (its retry), so that copy
    // tries to claim while the first is still sending, whatever the scheduling. Should a second send
    // ever start, it opens the gate too, so a broken lease fails the assertions below instead of hanging.
    let open = () => {}
    const gate = new Promise<void>((resolve) => {
      open = resolve
    })
    fetchSpy.mockImplementation(async () => {
      if (fetchSpy.mock.calls.length > 1) open()
      await gate
      return metaSuccess('wamid.concurrent')
    })
    const beforeRun = (messages: readonly Message[]) => {
      for (const message of messages) {
        const retry = message.retry.bind(message)
        message.retry = (options) => {
          retry(options)
          open()
        }
      }
    }

    const { result, retry } = await runQueue([job, job], { env: metaEnv(), beforeRun })

    expect(fetchSpy).toHaveBeenCalledTimes(1)
    expect(result.explicitAcks).toHaveLength(1)
    expect(result.retryMessages).toHaveLength(1)
    const waited = retry.find((spy) => spy.mock.calls.length > 0)
    expect(waited).toHaveBeenCalledWith({ delaySeconds: LEASE_MS / 1000 })
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'sent', attempts: 1 })
  })

  it('takes over a job whose consumer died mid-send once its lease has run out', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const { job } = await issueJob()
    // What a consumer that claimed the job and then vanished leaves behind.
    await env.DB.prepare(`UPDATE deliveries SET status = 'sending', attempts = 1, lease_until = ?2 WHERE id = ?1`)
      .bind(job.id, Date.now() + LEASE_MS)
      .run()

    const early = await runQueue([job], { env: metaEnv(), attempts: 2 })
    expect(fetchSpy).not.toHaveBeenCalled()
    expect(early.retry[0]).toHaveBeenCalledWith({ delaySeconds: LEASE_MS / 1000 })

    vi.setSystemTime(Date.now() + LEASE_MS + 1)
    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.takeover'))
    const late = await runQueue([job], { env: metaEnv(), attempts: 3 })
    expect(late.result.explicitAcks).toEqual(late.ids)
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'sent', wamid: 'wamid.takeover', attempts: 2 })
  })

  it('does not send again after a permanent failure', async () => {
    const { job } = await issueJob()
    fetchSpy.mockResolvedValueOnce(new Response(JSON.stringify({ error: { code: 131026 } }), { status: 400 }))
    await runQueue([job], { env: metaEnv() })
    const again = await runQueue([job], { env: metaEnv(), attempts: 2 })
    expect(fetchSpy).toHaveBeenCalledTimes(1)
    expect(again.result.explicitAcks).toEqual(again.ids)
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'failed', error_code: 131026 })
  })
})

describe('one queue batch, recorded together', () => {
  it("records each job's own outcome: each sent row its own message id, a retry and a failure on theirs", async () => {
    const jobs = [await issueJob(), await issueJob(), await issueJob(), await issueJob()]
    const [sentA, retried, failed, sentB] = jobs.map((j) => j.job)
    if (!sentA || !retried || !failed || !sentB) throw new Error('four jobs issued')
    // The Graph API answers by recipient, whatever order the sends run in.
    const answers = new Map<string, () => Response>([
      [sentA.phone_number, () => metaSuccess('wamid.a')],
      [retried.phone_number, () => metaError(429, 130429)],
      [failed.phone_number, () => metaError(400, 131026)],
      [sentB.phone_number, () => metaSuccess('wamid.b')],
    ])
    fetchSpy.mockImplementation(async (_url, init) => {
      const to = `+${(JSON.parse(String(init?.body)) as { to: string }).to}`
      const answer = answers.get(to)
      if (!answer) throw new Error(`unexpected recipient ${to}`)
      return answer()
    })

    const { result } = await runQueue([sentA, retried, failed, sentB], { env: metaEnv() })

    expect(fetchSpy).toHaveBeenCalledTimes(4)
    expect(result.explicitAcks).toHaveLength(3)
    expect(result.retryMessages).toHaveLength(1)
    expect(await deliveryRow(sentA.id)).toMatchObject({ status: 'sent', wamid: 'wamid.a', error_code: null })
    expect(await deliveryRow(sentB.id)).toMatchObject({ status: 'sent', wamid: 'wamid.b', error_code: null })
    expect(await deliveryRow(retried.id)).toMatchObject({ status: 'sending', wamid: null, error_code: 130429 })
    expect(await deliveryRow(failed.id)).toMatchObject({ status: 'failed', wamid: null, error_code: 131026 })
  })
})

describe('codes that can no longer be used are never sent', () => {
  it('drops a job whose code has expired and records it as expired', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const { job } = await issueJob({ extra: { expiration_minutes: 1 } })
    vi.setSystemTime(Date.now() + 60_000)

    const { result, ids } = await runQueue([job], { env: metaEnv() })

    expect(fetchSpy).not.toHaveBeenCalled()
    expect(result.explicitAcks).toEqual(ids)
    expect(await deliveryRow(job.id)).toMatchObject({
      status: 'expired',
      error_detail: 'code_expired',
      attempts: 0,
    })
  })

  it('drops an expired job that was waiting for a retry', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const { job } = await issueJob({ extra: { expiration_minutes: 1 } })
    fetchSpy.mockResolvedValueOnce(new Response(JSON.stringify({ error: { code: 130429 } }), { status: 429 }))
    await runQueue([job], { env: metaEnv() })
    vi.setSystemTime(Date.now() + 61_000)

    const { result, ids } = await runQueue([job], { env: metaEnv(), attempts: 2 })

    expect(fetchSpy).toHaveBeenCalledTimes(1)
    expect(result.explicitAcks).toEqual(ids)
    expect(await deliveryRow(job.id)).toMatchObject({
      status: 'expired',
      error_detail: 'code_expired',
      attempts: 1,
    })
  })

  it('drops a job whose code was replaced by a newer one, and sends the newer one', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const first = await issueJob()
    vi.setSystemTime(Date.now() + 60_000)
    const second = await issueJob({ project: first.project, phoneNumber: first.phoneNumber })

    const stale = await runQueue([first.job], { env: metaEnv() })
    expect(fetchSpy).not.toHaveBeenCalled()
    expect(stale.result.explicitAcks).toEqual(stale.ids)
    expect(await deliveryRow(first.job.id)).toMatchObject({
      status: 'expired',
      error_detail: 'code_superseded',
    })

    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.newer'))
    await runQueue([second.job], { env: metaEnv() })
    expect(fetchSpy).toHaveBeenCalledTimes(1)
    expect(await deliveryRow(second.job.id)).toMatchObject({ status: 'sent' })
  })
})

describe('malformed jobs', () => {
  it('acks a message that is not a delivery job', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const { result, ids } = await runQueue([{ v: 2, hello: 'world' }], { env: metaEnv() })
    expect(result.explicitAcks).toEqual(ids)
    expect(errors).toHaveBeenCalledWith(expect.stringContaining('whatsapp.job_invalid'))
  })

  it('acks a job without a delivery record', async () => {
    const { job } = await issueJob()
    const { result, ids } = await runQueue([{ ...job, id: crypto.randomUUID() }], { env: metaEnv() })
    expect(fetchSpy).not.toHaveBeenCalled()
    expect(result.explicitAcks).toEqual(ids)
  })

  it('fails a job whose code does not decrypt (tampered, or moved to another number) without sending', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const { job } = await issueJob()
    const { result, ids } = await runQueue([{ ...job, phone_number: '+12025559999' }], { env: metaEnv() })
    expect(fetchSpy).not.toHaveBeenCalled()
    expect(result.explicitAcks).toEqual(ids)
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'failed', error_detail: 'code_decrypt_failed' })
    expect(errors).toHaveBeenCalledWith(expect.stringContaining('"alert":true'))
  })

  it('keeps messages of a queue it does not know', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const { job } = await issueJob()
    const { result } = await runQueue([job], { env: metaEnv(), queue: 'some-other-queue' })
    expect(result.retryBatch.retry).toBe(true)
    expect(fetchSpy).not.toHaveBeenCalled()
  })
})

describe('backoffSeconds', () => {
  it('doubles from 2 s up to a 60 s cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map((a) => backoffSeconds(a, 0, () => 0))).toEqual([2, 4, 8, 16, 32, 60, 60, 60])
  })

  it('adds up to half again as jitter', () => {
    expect(backoffSeconds(3, 0, () => 0.999)).toBe(12)
    expect(backoffSeconds(20, 0, () => 0.999)).toBe(90)
  })

  it('never goes below the minimum delay', () => {
    expect(backoffSeconds(1, 6, () => 0)).toBe(6)
    expect(backoffSeconds(1, 6, () => 0.5)).toBe(8)
    expect(backoffSeconds(4, 6, () => 0)).toBe(16)
  })
})

describe("the consumer's statements for a whole queue batch", () => {
  // One statement leases or records every job of a queue batch: each job must be a lookup by id on
  // the deliveries key, never a walk of the table, which holds every delivery of the last 30 days.
  const walksDeliveries = (detail: string) => /^SCAN (deliveries|d)\b/.test(detail)

  it('leases by id', async () => {
    const lines = await queryPlan(LEASE_SQL, '["a","b"]', 1, 'meta', 2)
    expect(lines).toContain('SEARCH deliveries USING INDEX sqlite_autoindex_deliveries_1 (id=?)')
    expect(lines.filter(walksDeliveries)).toEqual([])
  })

  it('records sent by id', async () => {
    const lines = await queryPlan(SENT_SQL, '[{"id":"a","wamid":"w","fallback_code":null}]', 1)
    expect(lines).toContain('SEARCH d USING INDEX sqlite_autoindex_deliveries_1 (id=?)')
    expect(lines.filter(walksDeliveries)).toEqual([])
  })
})
