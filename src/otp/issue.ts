import type { Batch, Handle } from '../db/batch'
import { queuedDeliveryStatement } from '../db/deliveries'
import { codeStatement, type LiveCodeRow, liveCodeStatement } from '../db/otp-codes'
import type { Project } from '../db/projects'
import { StytchError } from '../errors'
import { assertCountryAllowed, ipKeys, type SendSubject, sendCountry, sendLimitStatements } from '../limits'
import { logEvent } from '../log'
import { setMetricDimensions } from '../metrics'
import { type ParsedPhone, parsePhone, SANDBOX_PHONE_NUMBER } from '../phone'
import type { AttributesInput, Locale } from '../schemas'
import type { LineType, ProjectSettings } from '../settings'
import { gateRow, newPendingCode, type PendingCode, storeAndEnqueue } from './code-store'
import { undoSend } from './undo-send'

/**
 * Issuing a code, shared by login_or_create and /send: where it goes, the statements that make it
 * the phone's current code and count it against the abuse limits inside the caller's batch, and
 * what happens after that batch committed.
 */

/** Where a send goes. The sandbox number (test projects) has no country and is sent nothing. */
export interface SendTarget {
  sandbox: boolean
  phone: ParsedPhone
  country: string | null
}

/**
 * Validates the number, the project's country allowlist and its allowed line types before anything
 * is written. The sandbox number has neither country nor line type and is exempt from both.
 */
export function sendTarget(project: Project, phoneNumber: string): SendTarget {
  const sandbox = project.env === 'test' && phoneNumber === SANDBOX_PHONE_NUMBER
  const phone = sandbox ? { e164: SANDBOX_PHONE_NUMBER, country: null, type: null } : parsePhone(phoneNumber)
  if (!phone) throw new StytchError('invalid_phone_number')
  const country = sandbox ? null : sendCountry(phone)
  if (country) setMetricDimensions({ country })
  if (country) assertCountryAllowed(project.settings, country)
  if (!sandbox) assertLineTypeAllowed(project.settings, phone.type)
  return { sandbox, phone, country }
}

/**
 * Premium-rate, toll-free, personal and similar numbers earn their holder money per message: a
 * favourite of toll fraud. Only the project's allowed_line_types receive codes; a number whose type
 * libphonenumber cannot tell is allowed only with "*".
 */
function assertLineTypeAllowed(settings: ProjectSettings, type: LineType | null): void {
  const allowed = settings.allowed_line_types
  if (allowed === '*' || (type !== null && allowed.includes(type))) return
  const kind = type === null ? 'of an unknown type' : `a ${type.toLowerCase().replaceAll('_', ' ')} number`
  throw new StytchError('invalid_phone_number', {
    message: `The phone number is ${kind}, and this project does not send codes to that type of number (allowed_line_types).`,
  })
}

export interface IssueInput {
  expiration_minutes: number
  locale: Locale
  attributes?: AttributesInput | undefined
}

/** A code being issued: what the limits count it as, and where its batch read the code it replaced. */
export interface Issue {
  target: SendTarget
  pending: PendingCode | null
  subject: SendSubject
  /** The phone's live code before this batch replaced it (null when no code is issued). */
  liveCode: Handle<LiveCodeRow> | null
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
  options: { at: number; mintedUserId: string | null; ownerUserId: string | null },
): Promise<Issue> {
  const { phone } = target
  setMetricDimensions({ locale: input.locale })
  const [pending, ip] = await Promise.all([
    target.sandbox
      ? null
      : newPendingCode(env, project.id, phone.e164, input.expiration_minutes, input.locale, input.attributes),
    ipKeys(env, input.attributes?.ip_address),
  ])
  const subject: SendSubject = {
    projectId: project.id,
    settings: project.settings,
    phoneNumber: target.sandbox ? null : phone.e164,
    country: target.country,
    ip,
    mintedUserId: options.mintedUserId,
    deliveryId: pending?.codeId ?? null,
    now: options.at,
  }
  let liveCode: Handle<LiveCodeRow> | null = null
  if (pending) {
    liveCode = batch.add<LiveCodeRow>(liveCodeStatement(env.DB, project.id, phone.e164, options.at))
    const code = gateRow(pending)
    batch.add(codeStatement(env.DB, project.id, phone.e164, code, options.ownerUserId))
    batch.add(queuedDeliveryStatement(env.DB, project.id, phone.e164, code, options.ownerUserId))
  }
  batch.addAll(sendLimitStatements(env.DB, subject))
  return { target, pending, subject, liveCode }
}

/**
 * After the batch committed: the code's hash goes to KV and one job to the queue. If either fails,
 * the delivery is closed and the send's limit events are refunded (undoSend), so a retry works.
 */
export async function completeIssue(env: Env, project: Project, issue: Issue, phoneId: string): Promise<void> {
  const { pending } = issue
  if (!pending) return
  const replaced = issue.liveCode?.first() ?? null
  await storeAndEnqueue(env, project.id, phoneId, issue.target.phone.e164, pending, replaced).catch((err: unknown) =>
    undoSend(env.DB, issue.subject, pending.codeId, err),
  )
  logEvent('info', 'otp.sent', {
    delivery_id: pending.codeId,
    phone_id: phoneId,
    project_id: project.id,
    country: issue.target.country,
    locale: pending.locale,
    expiration_minutes: pending.expirationMinutes,
  })
}
