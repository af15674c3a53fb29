import { now } from '../clock'
import { attachStatements, releaseExpiredByNumber, userExistsStatement } from '../db/phones'
import type { Project } from '../db/projects'
import { type PhoneOwnerRow, phoneOwnerStatement } from '../db/users'
import { StytchError } from '../errors'
import { newId } from '../ids'
import { type SendSubject, assertCountryAllowed, batchWithLimits, sendCountry, sendLimitStatements } from '../limits'
import { SANDBOX_PHONE_NUMBER, parsePhone } from '../phone'
import type { SendInput } from '../schemas'
import { sendUserId } from '../sessions/otp'
import { type LiveCodeRow, codeStatements, liveCodeStatement, newPendingCode, storeAndEnqueue } from './code-store'
import { loginOrCreate } from './login-or-create'
import { undoSend } from './undo-send'

export interface SendResult {
  user_id: string
  phone_id: string
}

/**
 * POST /v1/otps/whatsapp/send: a code for a number that belongs to a user, issued exactly as
 * login_or_create issues it (same code rules, same job; the new code supersedes the old). With
 * `user_id` a number nobody has is first attached to that user, unverified, for 5 minutes. One D1
 * batch decides everything; its writes are conditioned so that a refused request changes nothing.
 */
export async function sendCode(env: Env, project: Project, request: SendInput): Promise<SendResult> {
  // A session_token / session_jwt stands for its (live) session's user, exactly as user_id does.
  const input = { ...request, user_id: await sendUserId(env, project, request, now()) }
  const sandbox = project.env === 'test' && input.phone_number === SANDBOX_PHONE_NUMBER
  // The sandbox number behaves as on login_or_create (a stable user, no code, no job).
  if (sandbox && !input.user_id) {
    const { user_id, phone_id } = await loginOrCreate(env, project, { ...input, create_user_as_pending: false })
    return { user_id, phone_id }
  }
  const phone = sandbox ? { e164: SANDBOX_PHONE_NUMBER, country: null } : parsePhone(input.phone_number)
  if (!phone) throw new StytchError('invalid_phone_number')
  // As on login_or_create: the sandbox number has no country and is sent nothing.
  const country = sandbox ? null : sendCountry(phone)
  if (country) assertCountryAllowed(project.settings, country)

  const at = now()
  const userId = input.user_id ?? null
  const pending = sandbox
    ? null
    : await newPendingCode(env, project.id, phone.e164, input.expiration_minutes, input.locale, input.attributes)
  const statements = [releaseExpiredByNumber(env.DB, project.id, phone.e164, at)]
  if (userId) {
    const phoneId = newId('phone', project.env)
    statements.push(
      ...attachStatements(env.DB, { projectId: project.id, phoneNumber: phone.e164, phoneId, userId, at }),
    )
  }
  const liveAt = statements.length
  if (pending) {
    statements.push(
      liveCodeStatement(env.DB, project.id, phone.e164, at),
      ...codeStatements(env.DB, project.id, phone.e164, pending, userId),
    )
  }
  // The send limits, as on login_or_create; a send refused by the conditions above issues no
  // delivery row and so counts nothing.
  const limitSubject: SendSubject = {
    projectId: project.id,
    settings: project.settings,
    phoneNumber: sandbox ? null : phone.e164,
    country,
    ipAddress: input.attributes?.ip_address,
    mintedUserId: null,
    deliveryId: pending?.codeId ?? null,
    now: at,
  }
  statements.push(...sendLimitStatements(env.DB, limitSubject))
  if (userId) statements.push(userExistsStatement(env.DB, project.id, userId))
  statements.push(phoneOwnerStatement(env.DB, project.id, phone.e164))
  const results = await batchWithLimits(env.DB, statements, project.id)

  const owner = results.at(-1)?.results[0] as PhoneOwnerRow | undefined
  if (userId) {
    if (results.at(-2)?.results.length === 0) throw new StytchError('user_not_found')
    if (owner && owner.user_id !== userId) throw new StytchError('duplicate_phone_number')
  }
  if (!owner) throw new StytchError('phone_number_not_found')

  if (pending) {
    const replaced = (results[liveAt]?.results[0] as LiveCodeRow | undefined) ?? null
    await storeAndEnqueue(env, project.id, owner.phone_id, phone.e164, pending, replaced).catch((err: unknown) =>
      undoSend(env.DB, limitSubject, pending.codeId, err),
    )
  }
  return { user_id: owner.user_id, phone_id: owner.phone_id }
}
