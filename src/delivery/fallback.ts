import * as z from 'zod'
import { now } from '../clock'
import { openRotating, sealCurrent } from '../crypto'
import { Batch } from '../db/batch'
import { fallbackDeliveryStatement } from '../db/deliveries'
import { smsSentStatement } from '../db/otp-codes'
import type { Project } from '../db/projects'
import { rotatingSecret } from '../env'
import { StytchError } from '../errors'
import {
  logBreakerTrip,
  runWithLimits,
  type SendSubject,
  sendCountry,
  sendLimitStatements,
  smsBreakerTripStatement,
} from '../limits'
import { errorName, logEvent } from '../log'
import { setMetricDimensions } from '../metrics'
import { assertChannelAllows } from '../otp/policy'
import { undoSend } from '../otp/undo-send'
import { parsePhone } from '../phone'
import { LOCALES } from '../schemas'
import { type DeliveryJob, jobAad } from './job'
import { smsEnabled } from './select'

/**
 * WhatsApp → SMS fallback. When Meta says a WhatsApp message's recipient cannot receive WhatsApp
 * (a `fallback` error code: 131026 and 130497, src/whatsapp/meta.ts), in its reply to the send or
 * later in a status webhook, a project with whatsapp_fallback 'sms' sends the same code once by SMS:
 * no second code, the original expiry holds, and the SMS counts against the SMS limits (country cap,
 * pumping breaker) and SMS allowlists, which a pumping ring could otherwise reach through WhatsApp
 * requests for numbers that are not on WhatsApp. The code stays sealed throughout: the WhatsApp job's
 * ciphertext is kept on its delivery row (fallback_code) until the delivery is final, and the SMS job
 * carries it re-sealed for itself.
 */

/** How a fallback ended; each outcome is logged as `otp.fallback` and counted (metric kind fallback). */
export type FallbackOutcome =
  /** The SMS job is on the queue. */
  | 'queued'
  /** The project does not fall back (any more): nothing happens, nothing is logged. */
  | 'off'
  /** This deployment sends no SMS (SMS_PROVIDER "none"): an alert, since the project asked for it. */
  | 'unavailable'
  /** The SMS allowlists exclude the number (country, line type). */
  | 'refused'
  /** An SMS limit refused it (country cap, paused by the breaker). */
  | 'limited'
  /** The code expired, was used or replaced first, or the delivery already fell back. */
  | 'too_late'
  /** The sealed code would not open, or the SMS job could not be queued: an alert. */
  | 'failed'

/** What a fallback starts from: the WhatsApp job, the code in clear if the caller has it, Meta's error. */
export interface FallbackSource {
  job: DeliveryJob
  code?: string
  errorCode: number | null
}

const FallbackCode = z.object({
  v: z.literal(1),
  locale: z.enum(LOCALES),
  code: z.object({ iv: z.string().min(1), ct: z.string().min(1) }),
})

/**
 * What a WhatsApp delivery keeps for its fallback (deliveries.fallback_code): the job's sealed code,
 * bound to that job as on the queue, and the message locale. Never the code in clear.
 */
export function fallbackCodeOf(job: DeliveryJob): string {
  return JSON.stringify({ v: 1, locale: job.locale, code: job.code })
}

/** The WhatsApp job a kept fallback code belongs to, rebuilt from its delivery row; null if unreadable. */
export function jobFromFallbackCode(
  stored: string,
  row: Pick<DeliveryJob, 'id' | 'project_id' | 'phone_id' | 'phone_number' | 'expires_at'>,
): DeliveryJob | null {
  let parsed: z.infer<typeof FallbackCode>
  try {
    parsed = FallbackCode.parse(JSON.parse(stored))
  } catch {
    logEvent('error', 'otp.fallback', {
      delivery_id: row.id,
      outcome: 'failed',
      detail: 'fallback_code_unreadable',
      alert: true,
    })
    return null
  }
  return { v: 1, ...row, locale: parsed.locale, code: parsed.code, channel: 'whatsapp', fallback: 'sms' }
}

/**
 * Sends the code of `source.job` by SMS, if its project falls back and the code is still live. One
 * D1 batch writes the SMS delivery row (once per WhatsApp delivery, only while the code is the
 * phone's live one), counts it against the SMS limits and judges the breaker, and marks the code as
 * carried by SMS; then the SMS job goes on the queue. Never throws: every outcome is logged.
 * `env` is the project's (its DB the project's shard); `project` its directory record.
 */
export async function startFallback(
  env: Env,
  project: Project,
  source: FallbackSource,
  at: number = now(),
): Promise<FallbackOutcome> {
  const { job } = source
  const fields = { delivery_id: job.id, project_id: job.project_id, error_code: source.errorCode }
  const outcome = (
    result: FallbackOutcome,
    level: 'info' | 'warn' | 'error',
    extra: Record<string, string | boolean | null> = {},
  ) => {
    logEvent(level, 'otp.fallback', { ...fields, outcome: result, ...extra })
    return result
  }
  try {
    if (project.settings.whatsapp_fallback !== 'sms') return 'off'
    setMetricDimensions({ channel: 'sms' })
    if (!smsEnabled(env)) return outcome('unavailable', 'error', { detail: 'sms_provider_none', alert: true })
    const phone = parsePhone(job.phone_number)
    if (!phone) return outcome('refused', 'warn', { detail: 'invalid_phone_number' })
    const country = sendCountry(phone)
    setMetricDimensions({ country })
    try {
      assertChannelAllows(project.settings, 'sms', phone, country)
    } catch (err) {
      if (err instanceof StytchError) return outcome('refused', 'warn', { detail: err.errorType })
      throw err
    }

    const smsId = crypto.randomUUID()
    // Only the SMS budget: the send itself was counted against the per-phone, per-IP and per-country
    // limits when the code was issued.
    const subject: SendSubject = {
      projectId: project.id,
      settings: project.settings,
      phoneNumber: null,
      country: null,
      smsCountry: country,
      ip: [],
      mintedUserId: null,
      deliveryId: smsId,
      now: at,
    }
    const batch = new Batch()
    const inserted = batch.add(fallbackDeliveryStatement(env.DB, smsId, job.id, at))
    batch.addAll(sendLimitStatements(env.DB, subject))
    const trip = smsBreakerTripStatement(env.DB, subject)
    const tripped = trip ? batch.add(trip) : null
    batch.add(smsSentStatement(env.DB, { phoneId: job.phone_id, country, at, deliveryId: smsId }))
    try {
      await runWithLimits(env.DB, batch, project.id)
    } catch (err) {
      if (err instanceof StytchError) return outcome('limited', 'warn', { detail: err.errorType })
      throw err
    }
    if (tripped?.first()) logBreakerTrip(subject)
    if (!inserted.first()) return outcome('too_late', 'info')

    const key = rotatingSecret(env, 'CODE_ENCRYPTION_KEY')
    const code = source.code ?? (await openRotating(key, job.code, jobAad(job))).plaintext
    const sms: DeliveryJob = {
      v: 1,
      id: smsId,
      project_id: job.project_id,
      phone_id: job.phone_id,
      phone_number: job.phone_number,
      locale: job.locale,
      expires_at: job.expires_at,
      code: await sealCurrent(key, code, jobAad({ id: smsId, phone_id: job.phone_id, phone_number: job.phone_number })),
      channel: 'sms',
      country,
    }
    try {
      await env.WHATSAPP_QUEUE.send(sms, { contentType: 'json' })
    } catch (err) {
      // Closes the SMS delivery and gives its SMS budget back, as a send whose job never left.
      await undoSend(env.DB, subject, smsId, err).catch(() => undefined)
      return outcome('failed', 'error', { detail: 'enqueue_failed', alert: true })
    }
    return outcome('queued', 'info', { fallback_id: smsId })
  } catch (err) {
    return outcome('failed', 'error', { detail: 'fallback_error', error: errorName(err), alert: true })
  }
}

/**
 * Leaves the fallback of `source.job` to the consumer, `delaySeconds` from now: for a status that
 * arrives while the job's project is paused by a move between shards, which may not write until the
 * pause is over. The job is the WhatsApp job rebuilt from its delivery, marked `start_fallback`.
 * Never throws: a job that cannot be queued is logged as a failed fallback.
 */
export async function deferFallback(env: Env, source: FallbackSource, delaySeconds: number): Promise<void> {
  const job: DeliveryJob = { ...source.job, start_fallback: { error_code: source.errorCode } }
  try {
    await env.WHATSAPP_QUEUE.send(job, { contentType: 'json', delaySeconds })
    logEvent('info', 'otp.fallback_deferred', {
      delivery_id: job.id,
      project_id: job.project_id,
      delay_seconds: delaySeconds,
    })
  } catch (err) {
    logEvent('error', 'otp.fallback', {
      delivery_id: job.id,
      project_id: job.project_id,
      error_code: source.errorCode,
      outcome: 'failed',
      detail: 'enqueue_failed',
      error: errorName(err),
      alert: true,
    })
  }
}
