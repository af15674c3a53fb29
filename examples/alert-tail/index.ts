/**
 * Tail Worker: forwards every log line of the WhatsApp OTP service that carries `"alert": true` to
 * a chat webhook (ALERT_WEBHOOK_URL, a secret). Every alert line is an error line; a successful
 * login (send, delivery, authenticate) logs no line at all, its metrics data points count it, so
 * the invocations that reach this Worker with lines are the refusals and failures. The service writes one JSON object per line with ids,
 * labels and Meta error codes only, never a phone number or a code, so the alert text can be built
 * from the line as it is. Identical alerts of one batch of tail events are sent once with a count,
 * so a failing token does not post one message per delivery.
 */

export interface AlertEnv {
  ALERT_WEBHOOK_URL?: string
}

/** The fields of an alert line that make up its message, in this order; other fields are left out. */
const SHOWN = [
  'level',
  'event',
  'detail',
  'error_code',
  'template_event',
  'template',
  'language',
  'reason',
  'project_id',
]

/** One alert: its summary (what identical alerts share) and where it came from. */
interface Alert {
  summary: string
  script: string
  at: number
}

/** The alert lines in a batch of tail events, parsed from the JSON the service logs. */
export function alertsIn(events: readonly TraceItem[]): Alert[] {
  const alerts: Alert[] = []
  for (const item of events) {
    for (const log of item.logs) {
      const parts: unknown[] = Array.isArray(log.message) ? log.message : [log.message]
      for (const part of parts) {
        if (typeof part !== 'string' || !part.startsWith('{')) continue
        let line: Record<string, unknown>
        try {
          line = JSON.parse(part) as Record<string, unknown>
        } catch {
          continue
        }
        if (line.alert !== true) continue
        const summary = SHOWN.filter((k) => line[k] !== undefined && line[k] !== null && line[k] !== '')
          .map((k) => `${k}=${String(line[k])}`)
          .join(' ')
        alerts.push({ summary, script: item.scriptName ?? 'unknown', at: log.timestamp })
      }
    }
  }
  return alerts
}

/** The chat message for a batch's alerts: one line per distinct alert, with its count and first time. */
export function alertMessage(alerts: readonly Alert[]): string | null {
  if (alerts.length === 0) return null
  const groups = new Map<string, { alert: Alert; count: number }>()
  for (const alert of alerts) {
    const key = `${alert.script} ${alert.summary}`
    const group = groups.get(key)
    if (group) group.count += 1
    else groups.set(key, { alert, count: 1 })
  }
  const lines = [...groups.values()].map(
    ({ alert, count }) =>
      `• [${alert.script}] ${alert.summary}${count > 1 ? ` (×${count})` : ''} at ${new Date(alert.at).toISOString()}`,
  )
  return `WhatsApp OTP service needs attention:\n${lines.join('\n')}`
}

export default {
  async tail(events: TraceItem[], env: AlertEnv): Promise<void> {
    const text = alertMessage(alertsIn(events))
    if (!text) return
    if (!env.ALERT_WEBHOOK_URL) {
      // Still visible in this Worker's own logs.
      console.error(JSON.stringify({ event: 'alert_not_forwarded', reason: 'ALERT_WEBHOOK_URL is not set', text }))
      return
    }
    const res = await fetch(env.ALERT_WEBHOOK_URL, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text }),
    })
    if (!res.ok) console.error(JSON.stringify({ event: 'alert_not_forwarded', status: res.status }))
  },
}
