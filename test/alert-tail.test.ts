import { describe, expect, it, vi } from 'vitest'
import alertTail, { alertMessage, alertsIn } from '../examples/alert-tail/index'

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
})
