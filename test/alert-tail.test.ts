import { describe, expect, it, vi } from 'vitest'
import alertTail, { alertMessage, alertsIn } from '../examples/alert-tail/index'
import { capturedLines } from './log-capture'
import { authenticate } from './otp-helpers'
import { issueJob, metaEnv, metaError, metaSuccess, runQueue } from './whatsapp-helpers'

/** The Tail Worker of examples/alert-tail: only alert lines leave, grouped, to the configured webhook. */

const T = Date.parse('2026-11-30T12:00:00Z')

function traceItem(lines: unknown[], scriptName = 'whatsapp-otp'): TraceItem {
  return {
    event: null,
    eventTimestamp: T,
    logs: lines.map((message, i) => ({ timestamp: T + i, level: 'log', message: [message] })),
    exceptions: [],
    diagnosticsChannelEvents: [],
    scriptName,
    outcome: 'ok',
    executionModel: 'stateless',
    truncated: false,
    cpuTime: 1,
    wallTime: 1,
  }
}

const line = (fields: Record<string, unknown>) => JSON.stringify(fields)
const tokenExpired = line({
  level: 'error',
  event: 'whatsapp.failed',
  delivery_id: 'd1',
  error_code: 190,
  detail: 'access_token_expired',
  alert: true,
})
const routine = line({ level: 'info', event: 'whatsapp.sent', delivery_id: 'd2', wamid: 'wamid.routine' })
const notAlert = line({
  level: 'error',
  event: 'whatsapp.failed',
  error_code: 131026,
  detail: 'undeliverable',
  alert: false,
})
const paused = line({
  level: 'error',
  event: 'whatsapp.template_status',
  template_event: 'PAUSED',
  template: 'verification_code',
  language: 'es',
  reason: '',
  alert: true,
})

describe('alert Tail Worker', () => {
  it('keeps only lines with "alert": true and groups identical ones', () => {
    const events = [
      traceItem([tokenExpired, routine, notAlert, 'plain text', '{not json']),
      traceItem([tokenExpired, paused]),
    ]
    expect(alertsIn(events).map((a) => a.summary)).toEqual([
      'level=error event=whatsapp.failed detail=access_token_expired error_code=190',
      'level=error event=whatsapp.failed detail=access_token_expired error_code=190',
      'level=error event=whatsapp.template_status template_event=PAUSED template=verification_code language=es',
    ])
    expect(alertMessage(alertsIn(events))).toBe(
      [
        'WhatsApp OTP service needs attention:',
        '• [whatsapp-otp] level=error event=whatsapp.failed detail=access_token_expired error_code=190 (×2) at 2026-11-30T12:00:00.000Z',
        '• [whatsapp-otp] level=error event=whatsapp.template_status template_event=PAUSED template=verification_code language=es at 2026-11-30T12:00:00.001Z',
      ].join('\n'),
    )
  })

  it('posts one message to ALERT_WEBHOOK_URL per batch with alerts, and nothing otherwise', async () => {
    const fetchSpy = vi.spyOn(globalThis, 'fetch').mockResolvedValue(new Response('ok'))
    const env = { ALERT_WEBHOOK_URL: 'https://hooks.example.com/services/T000/B000/XXXX' }
    await alertTail.tail([traceItem([routine, notAlert])], env)
    expect(fetchSpy).not.toHaveBeenCalled()

    await alertTail.tail([traceItem([routine, tokenExpired])], env)
    expect(fetchSpy).toHaveBeenCalledTimes(1)
    const [url, init] = fetchSpy.mock.calls[0] ?? []
    expect(url).toBe(env.ALERT_WEBHOOK_URL)
    const body = JSON.parse(String(init?.body)) as { text: string }
    expect(body.text).toContain('access_token_expired')
    // Ids of routine lines and fields outside the summary (delivery ids, wamids) are not sent.
    expect(body.text).not.toContain('wamid')
    expect(body.text).not.toContain('d1')
  })

  it('without a webhook URL it sends nothing and says so in its own log', async () => {
    const fetchSpy = vi.spyOn(globalThis, 'fetch')
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {})
    await alertTail.tail([traceItem([tokenExpired])], {})
    expect(fetchSpy).not.toHaveBeenCalled()
    expect(String(errors.mock.calls[0]?.[0])).toContain('alert_not_forwarded')
  })

  it('the service as it logs: a successful login writes no line; the alerts of failures still reach the webhook', async () => {
    // What the service logged during each flow, as the Tail Worker would receive it.
    const linesOf = async (flow: () => Promise<unknown>) => {
      const before = capturedLines().length
      await flow()
      return capturedLines()
        .slice(before)
        .map((l) => l.text)
    }
    const fetchSpy = vi.spyOn(globalThis, 'fetch')
    const success = await linesOf(async () => {
      const { job, code, project } = await issueJob()
      fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.success'))
      await runQueue([job], { env: metaEnv() })
      expect((await authenticate(project, { method_id: job.phone_id, code })).status).toBe(200)
    })
    // Send, delivery and authenticate are counted by their metrics data points, with no log line.
    expect(success).toEqual([])

    const failures = await linesOf(async () => {
      for (const error of [131042, 190, 131026]) {
        const { job } = await issueJob()
        fetchSpy.mockResolvedValueOnce(metaError(400, error))
        await runQueue([job], { env: metaEnv() })
      }
    })
    const summaries = alertsIn([traceItem(failures)]).map((a) => a.summary)
    // Payment and token failures are alerts; a recipient not on WhatsApp (131026) is not.
    expect(summaries).toHaveLength(2)
    expect(summaries[0]).toContain('error_code=131042')
    expect(summaries[1]).toContain('error_code=190')
    const webhook = fetchSpy.mockResolvedValue(new Response('ok'))
    await alertTail.tail([traceItem(success), traceItem(failures)], {
      ALERT_WEBHOOK_URL: 'https://hooks.example.com/x',
    })
    expect(webhook).toHaveBeenLastCalledWith('https://hooks.example.com/x', expect.anything())
    const text = (JSON.parse(String(webhook.mock.lastCall?.[1]?.body)) as { text: string }).text
    expect(text).toContain('131042')
    expect(text).toContain('error_code=190')
    expect(text).not.toContain('131026')
  })
})
