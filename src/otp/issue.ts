import type { Batch, Handle } from '../db/batch'
import { queuedDeliveryStatement } from '../db/deliveries'
import { codeStatement, type LiveCodeRow, liveCodeStatement } from '../db/otp-codes'
import type { Project } from '../db/projects'
import type { Channel, DeliveryPlan } from '../delivery/job'
import { smsEnabled } from '../delivery/select'
import { StytchError } from '../errors'
import {
  ipKeys,
  logBreakerTrip,
  type SendSubject,
  sendCountry,
  sendLimitStatements,
  smsBreakerTripStatement,
} from '../limits'
import { recordEvent } from '../log'
import { setMetricDimensions } from '../metrics'
import { type ParsedPhone, parsePhone, SANDBOX_PHONE_NUMBER } from '../phone'
import type { AttributesInput, Locale } from '../schemas'
import { gateRow, newPendingCode, type PendingCode, storeAndEnqueue } from './code-store'
import { assertChannelAllows } from './policy'
import { undoSend } from './undo-send'

/**
 * Issuing a code, shared by login_or_create and /send: where it goes, the statements that make it
 * the phone's current code and count it against the abuse limits inside the caller's batch, and
 * what happens after that batch committed.
 */

/** Where a send goes, and on which channel. The sandbox number (test projects) has no country and is sent nothing. */
export interface SendTarget {
  sandbox: boolean
  phone: ParsedPhone
  country: string | null
  channel: Channel
}

/** SMS needs an SMS provider: without one (SMS_PROVIDER "none", the default) an SMS route is `503`. */
export function assertChannelEnabled(env: Env, channel: Channel): void {
  if (channel === 'sms' && !smsEnabled(env)) {
    throw new StytchError('service_unavailable', {
      message: 'This service sends no SMS: SMS_PROVIDER is not set to a provider.',
    })
  }
}

/**
 * Validates the number and the channel's allowlists of countries and line types (src/otp/policy.ts)
 * before anything is written. The sandbox number has neither country nor line type and is exempt
 * from both.
 */
export function sendTarget(project: Project, phoneNumber: string, channel: Channel = 'whatsapp'): SendTarget {
  setMetricDimensions({ channel })
  const sandbox = project.env === 'test' && phoneNumber === SANDBOX_PHONE_NUMBER
  const phone = sandbox ? { e164: SANDBOX_PHONE_NUMBER, country: null, type: null } : parsePhone(phoneNumber)
  if (!phone) throw new StytchError('invalid_phone_number')
  const country = sandbox ? null : sendCountry(phone)
  if (country) setMetricDimensions({ country })
  if (country) assertChannelAllows(project.settings, channel, phone, country)
  return { sandbox, phone, country, channel }
}

export interface IssueInput {
  expiration_minutes: number
  locale: Locale
  attributes?: AttributesInput | undefined
  /** SMS: end the message with the `@domain #code` autofill line (the project's sms_autofill_domain). */
  enable_autofill?: boolean | undefined
}

/** A code being issued: what the limits count it as, and where its batch read the code it replaced. */
export interface Issue {
  target: SendTarget
  pending: PendingCode | null
  subject: SendSubject
  /**
   * The phone's live code before this batch replaced it (null when no code is issued): its own read,
   * or the caller's (options.liveCode) when the caller reads the phone's owner there anyway.
   */
  liveCode: Handle<Partial<LiveCodeRow>> | null
  /** An SMS send's breaker trip, read after the batch (null when no breaker is judged). */
  breakerTrip: Handle<{ bucket: number }> | null
}

/**
 * The delivery of a code for `target`: a WhatsApp code of a project with whatsapp_fallback 'sms'
 * may fall back to SMS; an SMS with enable_autofill ends with the project's autofill domain, which
 * must then be set (`400 bad_request` otherwise, so the request does not silently lose autofill).
 */
function deliveryPlan(project: Project, target: SendTarget, input: IssueInput): DeliveryPlan {
  if (target.channel === 'whatsapp')
    return { channel: 'whatsapp', fallback: project.settings.whatsapp_fallback === 'sms' }
  const domain = project.settings.sms_autofill_domain
  if (input.enable_autofill && !domain) {
    throw new StytchError('bad_request', {
      message:
        'enable_autofill needs the domain of your login page in the project setting sms_autofill_domain (e.g. example.com).',
    })
  }
  return { channel: 'sms', country: target.country ?? '', autofillDomain: input.enable_autofill ? domain : null }
}

/**
 * Adds the issue's statements to the caller's batch, after the caller's own writes: the replaced
 * live code's read (when a code is issued), the code's gate and delivery rows, then the limit
 * statements, which count the send only if this batch issued the code and roll the whole batch back
 * when a limit is exceeded.
 */
export async function addIssue(
  batch: Batch,
  env: Env,
  project: Project,
  target: SendTarget,
  input: IssueInput,
  options: {
    at: number
    mintedUserId: string | null
    ownerUserId: string | null
    /** A statement already in the batch, before this one's, that reads the live code (code_id, expires_at). */
    liveCode?: Handle<Partial<LiveCodeRow>>
  },
): Promise<Issue> {
  const { phone } = target
  setMetricDimensions({ locale: input.locale })
  const plan = deliveryPlan(project, target, input)
  const [pending, ip] = await Promise.all([
    target.sandbox
      ? null
      : newPendingCode(env, project.id, phone.e164, input.expiration_minutes, input.locale, input.attributes, plan),
    ipKeys(env, input.attributes?.ip_address),
  ])
  const subject: SendSubject = {
    projectId: project.id,
    settings: project.settings,
    phoneNumber: target.sandbox ? null : phone.e164,
    country: target.country,
    smsCountry: target.channel === 'sms' ? target.country : null,
    ip,
    mintedUserId: options.mintedUserId,
    deliveryId: pending?.codeId ?? null,
    now: options.at,
  }
  let liveCode: Handle<Partial<LiveCodeRow>> | null = null
  if (pending) {
    liveCode = options.liveCode ?? batch.add<LiveCodeRow>(liveCodeStatement(env.DB, project.id, phone.e164, options.at))
    const code = gateRow(pending)
    batch.add(codeStatement(env.DB, project.id, phone.e164, code, options.ownerUserId))
    batch.add(queuedDeliveryStatement(env.DB, project.id, phone.e164, code, options.ownerUserId, target.channel))
  }
  batch.addAll(sendLimitStatements(env.DB, subject))
  const trip = smsBreakerTripStatement(env.DB, subject)
  return { target, pending, subject, liveCode, breakerTrip: trip ? batch.add<{ bucket: number }>(trip) : null }
}

/**
 * After the batch committed: the code's hash goes to KV and one job to the queue. If either fails,
 * the delivery is closed and the send's limit events are refunded (undoSend), so a retry works.
 */
export async function completeIssue(
  env: Env,
  project: Project,
  issue: Issue,
  phone: { phoneId: string; attached: boolean },
): Promise<void> {
  const { pending, target } = issue
  const { phoneId } = phone
  if (issue.breakerTrip?.first()) logBreakerTrip(issue.subject)
  if (!pending) return
  const live = issue.liveCode?.first()
  const replaced = live?.code_id ? { code_id: live.code_id, expires_at: live.expires_at ?? 0 } : null
  const options = { replaced, country: target.country, attached: phone.attached }
  await storeAndEnqueue(env, project.id, phoneId, target.phone.e164, pending, options).catch((err: unknown) =>
    undoSend(env.DB, issue.subject, pending.codeId, err),
  )
  recordEvent('otp.sent', {
    project_id: project.id,
    channel: target.channel,
    country: target.country,
    locale: pending.locale,
  })
}
