import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { callJson } from './helpers'
import { capturedLines } from './log-capture'
import {
  DEAD_LETTER_QUEUE,
  issueJob,
  metaEnv,
  metaError,
  metaSuccess,
  runQueue,
  signWebhook,
  statusPayload,
} from './whatsapp-helpers'

/**
 * Every condition that needs a human writes a log line with "alert": true (the alert wiring
 * forwards exactly those): token and permission errors, payment, template paused or disabled
 * (as a send error and as a template status webhook), account-level webhook errors, dead letters.
 * Conditions the recipient causes do not.
 */

let fetchSpy: ReturnType<typeof vi.fn>

beforeEach(() => {
  fetchSpy = vi.fn(() => Promise.reject(new Error('unexpected fetch')))
  vi.spyOn(globalThis, 'fetch').mockImplementation(fetchSpy as unknown as typeof fetch)
})

/** The JSON log lines written while `fn` ran. */
async function linesDuring(fn: () => Promise<unknown>): Promise<Record<string, unknown>[]> {
  const before = capturedLines().length
  await fn()
  return capturedLines()
    .slice(before)
    .flatMap((l) => {
      try {
        return [JSON.parse(l.text) as Record<string, unknown>]
      } catch {
        return []
      }
    })
}

const alerts = (lines: Record<string, unknown>[]) => lines.filter((l) => l.alert === true)

async function postWebhook(payload: unknown) {
  const body = JSON.stringify(payload)
  const headers = { 'content-type': 'application/json', 'x-hub-signature-256': await signWebhook(body) }
  const res = await callJson('POST', '/v1/webhooks/whatsapp', { project: null, rawBody: body, headers })
  expect(res.status).toBe(200)
}

function change(field: string, value: unknown) {
  return { object: 'whatsapp_business_account', entry: [{ id: '102290129340398', changes: [{ field, value }] }] }
}

describe('alerts', () => {
  it.each([
    [190, 'access_token_expired'],
    [10, 'permission_denied'],
    [131042, 'payment_issue'],
    [132015, 'template_paused'],
    [132016, 'template_disabled'],
    [133010, 'phone_not_registered'],
  ])('a send failing with %i raises one alert (%s)', async (code, detail) => {
    const { job } = await issueJob()
    fetchSpy.mockResolvedValueOnce(metaError(code === 190 ? 401 : 400, code))
    const lines = await linesDuring(() => runQueue([job], { env: metaEnv() }))
    expect(alerts(lines)).toEqual([expect.objectContaining({ event: 'whatsapp.failed', error_code: code, detail })])
  })

  it('a recipient-side failure (131026) raises none', async () => {
    const { job } = await issueJob()
    fetchSpy.mockResolvedValueOnce(metaError(400, 131026))
    expect(alerts(await linesDuring(() => runQueue([job], { env: metaEnv() })))).toEqual([])
  })

  it('a payment failure reported later by the status webhook raises an alert; an undeliverable one does not', async () => {
    const first = await issueJob()
    const second = await issueJob()
    fetchSpy
      .mockResolvedValueOnce(metaSuccess('wamid.alert-payment'))
      .mockResolvedValueOnce(metaSuccess('wamid.alert-user'))
    await runQueue([first.job], { env: metaEnv() })
    await runQueue([second.job], { env: metaEnv() })
    const lines = await linesDuring(() =>
      postWebhook(
        statusPayload([
          { id: 'wamid.alert-payment', status: 'failed', errors: [{ code: 131042 }] },
          { id: 'wamid.alert-user', status: 'failed', errors: [{ code: 131026 }] },
        ]),
      ),
    )
    expect(alerts(lines)).toEqual([
      expect.objectContaining({
        event: 'whatsapp.status',
        status: 'failed',
        error_code: 131042,
        detail: 'payment_issue',
      }),
    ])
  })

  it('a template paused or disabled (message_template_status_update) raises an alert; approved does not', async () => {
    const update = (event: string) =>
      change('message_template_status_update', {
        event,
        message_template_id: 594425479261596,
        message_template_name: 'verification_code',
        message_template_language: 'pt_BR',
        reason: event === 'APPROVED' ? 'NONE' : 'Free text from Meta that is never copied',
      })
    for (const event of ['PAUSED', 'DISABLED']) {
      const lines = await linesDuring(() => postWebhook(update(event)))
      expect(alerts(lines)).toEqual([
        {
          level: 'error',
          event: 'whatsapp.template_status',
          template_event: event,
          template: 'verification_code',
          language: 'pt_BR',
          reason: '',
          alert: true,
        },
      ])
    }
    const approved = await linesDuring(() => postWebhook(update('APPROVED')))
    expect(alerts(approved)).toEqual([])
    expect(approved).toContainEqual(
      expect.objectContaining({ event: 'whatsapp.template_status', template_event: 'APPROVED', reason: 'NONE' }),
    )
  })

  it('reads the webhook’s top-level value.errors: a permanent account error alerts, a transient one does not', async () => {
    const errors = (code: number) =>
      change('messages', {
        messaging_product: 'whatsapp',
        metadata: { display_phone_number: '15550783881', phone_number_id: '106540352242922' },
        errors: [{ code, title: 'title', message: 'message', error_data: { details: 'details' } }],
      })
    expect(alerts(await linesDuring(() => postWebhook(errors(131031))))).toEqual([
      expect.objectContaining({ event: 'whatsapp.webhook_error', error_code: 131031, detail: 'account_locked' }),
    ])
    const transient = await linesDuring(() => postWebhook(errors(131000)))
    expect(alerts(transient)).toEqual([])
    expect(transient).toContainEqual(expect.objectContaining({ event: 'whatsapp.webhook_error', error_code: 131000 }))
  })

  it('a job that reaches the dead-letter queue unsent raises an alert', async () => {
    const { job } = await issueJob()
    fetchSpy.mockResolvedValueOnce(metaError(429, 130429))
    await runQueue([job], { env: metaEnv() })
    const lines = await linesDuring(() => runQueue([job], { env, queue: DEAD_LETTER_QUEUE }))
    expect(alerts(lines)).toEqual([
      expect.objectContaining({ event: 'whatsapp.dead_letter', recorded: true, error_code: 130429 }),
    ])
  })
})
