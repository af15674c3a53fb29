import { now } from '../clock'
import { Batch } from '../db/batch'
import type { LiveCodeRow } from '../db/otp-codes'
import type { PhoneOwnerRow } from '../db/phones'
import type { Project } from '../db/projects'
import { findOrCreateStatements } from '../db/users'
import type { Channel } from '../delivery/job'
import { newId } from '../ids'
import { runWithLimits } from '../limits'
import type { LoginOrCreateInput } from '../schemas'
import { addIssue, assertChannelEnabled, completeIssue, type IssueInput, sendTarget } from './issue'

export interface LoginOrCreateResult {
  user_id: string
  phone_id: string
  user_created: boolean
}

/**
 * POST /v1/otps/{whatsapp,sms}/login_or_create: find or create the user owning the phone and issue a
 * new code, all in one D1 batch; then the code's hash goes to KV and one delivery job for `channel`
 * to the queue. The same user, phone and code model serves both channels: a number has one phone_id
 * whatever the channel, and a new code on either replaces the last one. The sandbox number (test
 * projects only) gets a stable user and phone and no code or job.
 */
export async function loginOrCreate(
  env: Env,
  project: Project,
  input: LoginOrCreateInput & IssueInput,
  channel: Channel = 'whatsapp',
): Promise<LoginOrCreateResult> {
  assertChannelEnabled(env, channel)
  const target = sendTarget(project, input.phone_number, channel)
  const at = now()
  const mintedUserId = newId('user', project.env)
  const { statements, owner } = findOrCreateStatements(env.DB, {
    projectId: project.id,
    phoneNumber: target.phone.e164,
    userId: mintedUserId,
    phoneId: newId('phone', project.env),
    status: input.create_user_as_pending ? 'pending' : 'active',
    now: at,
  })
  const batch = new Batch()
  batch.addAll(statements)
  // The owner, read with the live code the new code replaces: one statement before the issue's.
  const ownerRow = batch.add<PhoneOwnerRow & Partial<LiveCodeRow>>(owner)
  const issue = await addIssue(batch, env, project, target, input, {
    at,
    mintedUserId,
    ownerUserId: null,
    liveCode: ownerRow,
  })
  await runWithLimits(env.DB, batch, project.id)
  const row = ownerRow.first()
  if (!row) throw new Error('find-or-create returned no owner row')

  // A number login_or_create resolves is its owner's, never an attachment (findOrCreateStatements).
  await completeIssue(env, project, issue, { phoneId: row.phone_id, attached: false })
  return { user_id: row.user_id, phone_id: row.phone_id, user_created: row.user_created === 1 }
}
