import { env } from 'cloudflare:workers'
import fc from 'fast-check'
import { beforeAll, beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest'
import { backoffSeconds } from '../src/delivery/consumer'
import { LEASE_MS } from '../src/delivery/deliveries'
import type { DeliveryJob } from '../src/delivery/job'
import { failingStatementDb } from './fault-env'
import { capturedLines, quietConsole } from './log-capture'
import {
  DEAD_LETTER_QUEUE,
  deliveryRow,
  issueJob,
  metaEnv,
  metaError,
  metaReply,
  metaSuccess,
  runQueue,
} from './whatsapp-helpers'

/**
 * The Graph API failing, mocked at the fetch boundary, with the queue consumer driven directly
 * (worker.queue on a message batch, attempt after attempt, as the Queues runtime redelivers). A
 * transient failure is retried with backoff until the message is delivered, exactly once; a
 * permanent one is recorded and never retried; D1 failing inside the consumer loses nothing.
 */

/** The consumer's max_retries in wrangler.toml: a message is delivered at most 1 + 6 times. */
const MAX_DELIVERIES = 7

let fetchSpy: MockInstance<typeof fetch>

beforeAll(() => {
  quietConsole()
})

beforeEach(() => {
  fetchSpy = vi.spyOn(globalThis, 'fetch').mockRejectedValue(new Error('unexpected fetch'))
  vi.spyOn(Math, 'random').mockReturnValue(0)
})

/** A transient failure of one Graph API call, and the least delay its retry must wait. */
interface Transient {
  name: string
  minDelaySeconds: number
  respond: (init: RequestInit | undefined) => Promise<Response>
}

const timedOut = (name: 'TimeoutError' | 'AbortError') => async (init: RequestInit | undefined) => {
  // The provider must have armed a timeout; this is what fetch throws when it fires.
  expect(init?.signal).toBeInstanceOf(AbortSignal)
  throw new DOMException('The operation was aborted due to timeout', name)
}

const TRANSIENT: Transient[] = [
  { name: 'HTTP 500 without a body', minDelaySeconds: 0, respond: async () => metaReply(500, '<html>error</html>') },
  { name: 'HTTP 502 from a proxy', minDelaySeconds: 0, respond: async () => metaReply(502, 'Bad Gateway') },
  { name: '503 with code 131016', minDelaySeconds: 0, respond: async () => metaError(503, 131016) },
  { name: '500 with code 131000', minDelaySeconds: 0, respond: async () => metaError(500, 131000) },
  { name: '429 with code 130429', minDelaySeconds: 0, respond: async () => metaError(429, 130429) },
  { name: '400 with code 131056 (pair rate)', minDelaySeconds: 6, respond: async () => metaError(400, 131056) },
  { name: '400 with code 80007', minDelaySeconds: 0, respond: async () => metaError(400, 80007) },
  { name: 'HTTP 429 without a code', minDelaySeconds: 0, respond: async () => metaReply(429, 'slow down') },
  { name: 'a timeout', minDelaySeconds: 0, respond: timedOut('TimeoutError') },
  { name: 'an abort', minDelaySeconds: 0, respond: timedOut('AbortError') },
  {
    name: 'a network error',
    minDelaySeconds: 0,
    respond: async () => {
      throw new TypeError('Network connection lost.')
    },
  },
]

/**
 * Redelivers `job` to the consumer, as the queue does, until it is acked or the queue gives up
 * (then the dead-letter queue gets it). Returns the delay asked for each retry.
 */
async function driveToCompletion(
  job: DeliveryJob,
  base: Env = metaEnv(),
): Promise<{ delays: number[]; dead: boolean }> {
  const delays: number[] = []
  for (let attempt = 1; attempt <= MAX_DELIVERIES; attempt++) {
    const { result, retry, ids } = await runQueue([job], { env: base, attempts: attempt })
    if (result.explicitAcks.includes(ids[0] ?? '')) return { delays, dead: false }
    expect(retry[0]).toHaveBeenCalledTimes(1)
    const [options] = retry[0]?.mock.calls[0] ?? []
    delays.push(Number(options?.delaySeconds))
  }
  const dlq = await runQueue([job], { env: base, queue: DEAD_LETTER_QUEUE })
  expect(dlq.result.explicitAcks).toEqual(dlq.ids)
  return { delays, dead: true }
}

describe('transient Graph API failures', () => {
  it('any run of up to 6 transient failures, then success: delivered exactly once, with backoff', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom(...TRANSIENT), { maxLength: MAX_DELIVERIES - 1 }), async (failures) => {
        fetchSpy.mockReset()
        for (const failure of failures) fetchSpy.mockImplementationOnce((_url, init) => failure.respond(init))
        fetchSpy.mockImplementationOnce(async () => metaSuccess('wamid.after-retries'))
        fetchSpy.mockRejectedValue(new Error('a fetch after the success'))
        const { job } = await issueJob()

        const { delays, dead } = await driveToCompletion(job)

        expect(dead).toBe(false)
        expect(fetchSpy).toHaveBeenCalledTimes(failures.length + 1)
        expect(delays).toEqual(failures.map((f, i) => backoffSeconds(i + 1, f.minDelaySeconds, () => 0)))
        expect(await deliveryRow(job.id)).toMatchObject({
          status: 'sent',
          wamid: 'wamid.after-retries',
          attempts: failures.length + 1,
          error_code: null,
          lease_until: null,
        })
        // At-least-once delivery may hand the consumer the job again: it is not sent again.
        const again = await runQueue([job], { env: metaEnv(), attempts: 1 })
        expect(again.result.explicitAcks).toEqual(again.ids)
        expect(fetchSpy).toHaveBeenCalledTimes(failures.length + 1)
      }),
      { numRuns: 40 },
    )
  })

  it('still failing after every retry: the dead-letter queue records it failed, and it is not sent again', async () => {
    fetchSpy.mockImplementation(async () => metaError(429, 130429))
    const { job } = await issueJob()
    const { delays, dead } = await driveToCompletion(job)
    expect(dead).toBe(true)
    expect(delays).toEqual([2, 4, 8, 16, 32, 60, 60])
    expect(fetchSpy).toHaveBeenCalledTimes(MAX_DELIVERIES)
    expect(await deliveryRow(job.id)).toMatchObject({
      status: 'failed',
      error_code: 130429,
      error_detail: 'retries_exhausted',
      attempts: MAX_DELIVERIES,
    })
    await runQueue([job], { env: metaEnv(), attempts: 1 })
    expect(fetchSpy).toHaveBeenCalledTimes(MAX_DELIVERIES)
  })
})

describe('permanent Graph API failures: recorded once, no retry storm', () => {
  it.each([
    ['131026 undeliverable', 400, 131026, false],
    ['100 invalid parameter', 400, 100, true],
    ['190 access token expired', 401, 190, true],
    ['132001 template not found', 404, 132001, true],
    ['131047 re-engagement required', 400, 131047, false],
    ['368 account restricted', 403, 368, true],
  ])(
    '%s: a batch of 5 makes 5 calls, all acked and failed; redelivery sends nothing',
    async (_n, status, code, alert) => {
      fetchSpy.mockImplementation(async () => metaError(status, code))
      const p = (await issueJob()).project
      const jobs = await Promise.all([1, 2, 3, 4, 5].map(async () => (await issueJob({ project: p })).job))

      const first = await runQueue(jobs, { env: metaEnv() })
      expect(fetchSpy).toHaveBeenCalledTimes(5)
      expect(first.result.explicitAcks.sort()).toEqual([...first.ids].sort())
      expect(first.result.retryMessages).toEqual([])
      for (const job of jobs)
        expect(await deliveryRow(job.id)).toMatchObject({ status: 'failed', error_code: code, attempts: 1 })
      const failedLines = capturedLines().filter(
        (l) => l.text.includes('"event":"whatsapp.failed"') && l.text.includes(`"error_code":${code}`),
      )
      expect(failedLines.length).toBeGreaterThanOrEqual(5)
      expect(failedLines.every((l) => l.text.includes(`"alert":${alert}`))).toBe(true)

      const again = await runQueue(jobs, { env: metaEnv(), attempts: 2 })
      expect(again.result.explicitAcks.sort()).toEqual([...again.ids].sort())
      expect(fetchSpy).toHaveBeenCalledTimes(5)
    },
  )
})

describe('D1 failing inside the consumer loses nothing and sends nothing twice', () => {
  it('the claim failing: retried later without calling Meta, then delivered once', async () => {
    const { job } = await issueJob()
    const broken = metaEnv({ DB: failingStatementDb(env.DB, /SET status = 'sending'/, 1) })
    const failed = await runQueue([job], { env: broken })
    expect(failed.retry[0]).toHaveBeenCalledWith({ delaySeconds: 2 })
    expect(fetchSpy).not.toHaveBeenCalled()

    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.after-d1'))
    expect((await driveToCompletion(job)).dead).toBe(false)
    expect(fetchSpy).toHaveBeenCalledTimes(1)
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'sent', attempts: 1 })
  })

  it('recording a retry failing: the lease makes the next copy wait, then it is delivered once', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const { job } = await issueJob()
    fetchSpy.mockResolvedValueOnce(metaError(503, 131016))
    const broken = metaEnv({
      DB: failingStatementDb(env.DB, /UPDATE deliveries SET status = \?5, lease_until = NULL/, 1),
    })
    const failed = await runQueue([job], { env: broken })
    expect(failed.retry[0]).toHaveBeenCalledTimes(1)

    const early = await runQueue([job], { env: metaEnv(), attempts: 2 })
    expect(early.retry[0]).toHaveBeenCalledWith({ delaySeconds: LEASE_MS / 1000 })
    expect(fetchSpy).toHaveBeenCalledTimes(1)

    vi.setSystemTime(Date.now() + LEASE_MS + 1)
    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.after-lease'))
    const late = await runQueue([job], { env: metaEnv(), attempts: 3 })
    expect(late.result.explicitAcks).toEqual(late.ids)
    expect(fetchSpy).toHaveBeenCalledTimes(2)
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'sent', wamid: 'wamid.after-lease', attempts: 2 })
  })

  it('recording a success failing: acked anyway (a retry would send the code twice) and logged', async () => {
    const { job } = await issueJob()
    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.unrecorded'))
    const broken = metaEnv({ DB: failingStatementDb(env.DB, /SET status = 'sent'/, 1) })
    const { result, ids } = await runQueue([job], { env: broken })
    expect(result.explicitAcks).toEqual(ids)
    expect(fetchSpy).toHaveBeenCalledTimes(1)
    expect(capturedLines().some((l) => l.text.includes('"event":"whatsapp.sent_unrecorded"'))).toBe(true)
  })
})
