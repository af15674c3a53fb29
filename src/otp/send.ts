import { now } from '../clock'
import { Batch } from '../db/batch'
import { attachStatements, type PhoneOwnerRow, phoneOwnerStatement, releaseExpiredByNumber } from '../db/phones'
import type { Project } from '../db/projects'
import { userExistsStatement } from '../db/users'
import type { Channel } from '../delivery/job'
import { StytchError } from '../errors'
import { newId } from '../ids'
import { runWithLimits } from '../limits'
import { SANDBOX_PHONE_NUMBER } from '../phone'
import type { SendInput } from '../schemas'
import { sendUserId } from '../sessions/otp'
import { addIssue, assertChannelEnabled, completeIssue, type IssueInput, sendTarget } from './issue'
import { loginOrCreate } from './login-or-create'

export interface SendResult {
  user_id: string
  phone_id: string
}

/**
 * POST /v1/otps/{whatsapp,sms}/send: a code for a number that belongs to a user, issued exactly as
 * login_or_create issues it (same code rules, same job on `channel`; the new code supersedes the
 * old). With `user_id` a number nobody has is first attached to that user, unverified, for 5
 * minutes. One D1 batch decides everything; its writes are conditioned so that a refused request
 * changes nothing.
 */
export async function sendCode(
  env: Env,
  project: Project,
  request: SendInput & IssueInput,
  channel: Channel = 'whatsapp',
): Promise<SendResult> {
  assertChannelEnabled(env, channel)
  // A session_token / session_jwt stands for its (live) session's user, exactly as user_id does.
  const input = { ...request, user_id: await sendUserId(env, project, request, now()) }
  const sandbox = project.env === 'test' && input.phone_number === SANDBOX_PHONE_NUMBER
  // The sandbox number behaves as on login_or_create (a stable user, no code, no job).
  if (sandbox && !input.user_id) {
    const { user_id, phone_id } = await loginOrCreate(
      env,
      project,
      { ...input, create_user_as_pending: false },
      channel,
    )
    return { user_id, phone_id }
  }
  const target = sendTarget(project, input.phone_number, channel)
  const { e164 } = target.phone
  const at = now()
  const userId = input.user_id ?? null
  const batch = new Batch()
  batch.add(releaseExpiredByNumber(env.DB, project.id, e164, at))
  if (userId) {
    const phoneId = newId('phone', project.env)
    batch.addAll(attachStatements(env.DB, { projectId: project.id, phoneNumber: e164, phoneId, userId, at }))
  }
  // Issued for the number's owner only: a send refused by the conditions above issues no delivery
  // row and so counts nothing against the limits.
  const issue = await addIssue(batch, env, project, target, input, { at, mintedUserId: null, ownerUserId: userId })
  const user = userId ? batch.add(userExistsStatement(env.DB, project.id, userId)) : null
  // The attach flow sees the attaching user's claim (its own, or another user's: 409); without a user
  // only the number's real owner counts, so an attachment reads as an unknown number.
  const ownerRow = batch.add<PhoneOwnerRow>(
    phoneOwnerStatement(env.DB, project.id, e164, { claims: userId ? 'any' : 'owner' }),
  )
  await runWithLimits(env.DB, batch, project.id)

  const owner = ownerRow.first()
  if (userId) {
    if (user?.rows().length === 0) throw new StytchError('user_not_found')
    if (owner && owner.user_id !== userId) throw new StytchError('duplicate_phone_number')
  }
  if (!owner) throw new StytchError('phone_number_not_found')

  await completeIssue(env, project, issue, { phoneId: owner.phone_id, attached: owner.attachment === 1 })
  return { user_id: owner.user_id, phone_id: owner.phone_id }
}
