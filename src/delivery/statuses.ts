import { sendCountry } from '../limits'
import { logEvent, recordEvent } from '../log'
import { withMetrics } from '../metrics'
import { parsePhone } from '../phone'
import { twilioErrorRule } from '../sms/twilio'
import { metaErrorRule } from '../whatsapp/meta'
import { type AppliedStatus, applyStatuses, type StatusEvent } from './deliveries'
import { jobFromFallbackCode, startFallback } from './fallback'
import type { Channel } from './job'
import type { ErrorRule } from './provider'

/** The provider's rule for an error code of a status on `channel`. */
export function statusErrorRule(channel: Channel, code: number): ErrorRule | undefined {
  return channel === 'whatsapp' ? metaErrorRule(code) : twilioErrorRule(code)
}

/** How a failure reported after the provider accepted the message is labelled (deliveries.error_detail). */
const FAILED_DETAIL: Record<Channel, string> = { whatsapp: 'meta_status_failed', sms: 'twilio_status_failed' }

/**
 * The one path of every provider status: Meta's webhook, Twilio's status callback, and a status the
 * console provider reports at once. Moves the deliveries forward (src/delivery/deliveries.ts), logs
 * each status that moved one (with its metric), and when Meta reports a WhatsApp message failed
 * because its recipient cannot receive WhatsApp, starts the SMS fallback of a delivery that kept its
 * sealed code for it. Returns the statuses that moved a delivery.
 */
export async function applyProviderStatuses(
  env: Env,
  channel: Channel,
  events: readonly StatusEvent[],
  at: number,
): Promise<AppliedStatus[]> {
  const applied = await applyStatuses(env.DB, channel, events, at, FAILED_DETAIL[channel])
  for (const status of applied) {
    await withMetrics(env, { project: status.projectId, channel }, async () => {
      logStatus(channel, status, at)
      const rule = status.errorCode === null ? undefined : statusErrorRule(channel, status.errorCode)
      if (status.status === 'failed' && rule?.fallback && status.fallbackCode && status.phoneNumber) {
        const job = jobFromFallbackCode(status.fallbackCode, {
          id: status.deliveryId,
          project_id: status.projectId,
          phone_id: status.phoneId,
          phone_number: status.phoneNumber,
          expires_at: status.expiresAt,
        })
        if (job) await startFallback(env, { job, errorCode: status.errorCode }, at)
      }
    })
  }
  return applied
}

/**
 * One line (and metric) per status that moved a delivery: delivered and read with their latency
 * since the code was issued, failed with the provider's code. A failure an operator must fix
 * (payment, account, template, sender; or a code missing from the table) is an alert: such failures
 * often arrive only here, after the provider accepted the message.
 */
function logStatus(channel: Channel, status: AppliedStatus, at: number): void {
  const phone = status.phoneNumber ? parsePhone(status.phoneNumber) : null
  const fields = {
    delivery_id: status.deliveryId,
    project_id: status.projectId,
    country: phone ? sendCountry(phone) : null,
    status: status.status,
    attempts: status.attempts,
    latency_ms: Math.max(0, at - status.createdAt),
  }
  if (status.status !== 'failed') {
    recordEvent(`${channel}.status`, fields)
    return
  }
  const rule = status.errorCode === null ? undefined : statusErrorRule(channel, status.errorCode)
  const alert = rule ? (rule.alert ?? false) : true
  logEvent(alert ? 'error' : 'warn', `${channel}.status`, {
    ...fields,
    error_code: status.errorCode,
    detail: rule?.label ?? `${channel === 'whatsapp' ? 'meta' : 'twilio'}_error`,
    alert,
  })
}
