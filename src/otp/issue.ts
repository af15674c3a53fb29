import type { Project } from '../db/projects'
import { StytchError } from '../errors'
import { assertCountryAllowed, ipKeys, type SendSubject, sendCountry, sendLimitStatements } from '../limits'
import { logEvent } from '../log'
import { setMetricDimensions } from '../metrics'
import { type ParsedPhone, parsePhone, SANDBOX_PHONE_NUMBER } from '../phone'
import type { AttributesInput, Locale } from '../schemas'
import type { LineType, ProjectSettings } from '../settings'
import {
  codeStatements,
  type LiveCodeRow,
  liveCodeStatement,
  newPendingCode,
  type PendingCode,
  storeAndEnqueue,
} from './code-store'
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

/** A code being issued: its batch statements and what the limits count it as. */
export interface Issue {
  target: SendTarget
  pending: PendingCode | null
  subject: SendSubject
  /**
   * For the caller's batch, after its own writes: the replaced live code's read (first, when a code
   * is issued), the code's gate and delivery rows, then the limit statements, which count the send
   * only if this batch issued the code and roll the whole batch back when a limit is exceeded.
   */
  statements: D1PreparedStatement[]
}

export async function prepareIssue(
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
  const code = pending
    ? [
        liveCodeStatement(env.DB, project.id, phone.e164, options.at),
        ...codeStatements(env.DB, project.id, phone.e164, pending, options.ownerUserId),
      ]
    : []
  return { target, pending, subject, statements: [...code, ...sendLimitStatements(env.DB, subject)] }
}

/**
 * After the batch committed: the code's hash goes to KV and one job to the queue. If either fails,
 * the delivery is closed and the send's limit events are refunded (undoSend), so a retry works.
 * `liveCode` is the result of the issue's first statement (the code it replaced, if any).
 */
export async function completeIssue(
  env: Env,
  project: Project,
  issue: Issue,
  phoneId: string,
  liveCode: D1Result | undefined,
): Promise<void> {
  const { pending } = issue
  if (!pending) return
  const replaced = (liveCode?.results[0] as LiveCodeRow | undefined) ?? null
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
