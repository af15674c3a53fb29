import { now } from '../clock'
import type { Project } from '../db/projects'
import { type PhoneOwnerRow, findOrCreateStatements } from '../db/users'
import { StytchError } from '../errors'
import { newId } from '../ids'
import { type SendSubject, assertCountryAllowed, batchWithLimits, sendCountry, sendLimitStatements } from '../limits'
import { SANDBOX_PHONE_NUMBER, parsePhone } from '../phone'
import type { LoginOrCreateInput } from '../schemas'
import { type LiveCodeRow, codeStatements, liveCodeStatement, newPendingCode, storeAndEnqueue } from './code-store'
import { undoSend } from './undo-send'

export interface LoginOrCreateResult {
  user_id: string
  phone_id: string
  user_created: boolean
}

/**
 * POST /v1/otps/whatsapp/login_or_create: find or create the user owning the phone and issue a new
 * code, all in one D1 batch; then the code's hash goes to KV and one delivery job to the queue.
 * The sandbox number (test projects only) gets a stable user and phone and no code or job.
 */
export async function loginOrCreate(env: Env, project: Project, input: LoginOrCreateInput): Promise<LoginOrCreateResult> {
  const sandbox = project.env === 'test' && input.phone_number === SANDBOX_PHONE_NUMBER
  const phone = sandbox ? { e164: SANDBOX_PHONE_NUMBER, country: null } : parsePhone(input.phone_number)
  if (!phone) throw new StytchError('invalid_phone_number')
  // The sandbox number has no country and nothing is sent to it: no allowlist, no country cap.
  const country = sandbox ? null : sendCountry(phone)
  if (country) assertCountryAllowed(project.settings, country)

  const at = now()
  const mintedUserId = newId('user', project.env)
  const { statements, owner } = findOrCreateStatements(env.DB, {
    projectId: project.id,
    phoneNumber: phone.e164,
    userId: mintedUserId,
    phoneId: newId('phone', project.env),
    status: input.create_user_as_pending ? 'pending' : 'active',
    now: at,
  })
  const pending = sandbox
    ? null
    : await newPendingCode(env, project.id, phone.e164, input.expiration_minutes, input.locale, input.attributes)
  const issue = pending
    ? [liveCodeStatement(env.DB, project.id, phone.e164, at), ...codeStatements(env.DB, project.id, phone.e164, pending)]
    : []
  // Abuse limits ride in the same batch, after the writes they count; a tripped one rolls it all back.
  const limitSubject: SendSubject = {
    projectId: project.id,
    settings: project.settings,
    phoneNumber: sandbox ? null : phone.e164,
    country,
    ipAddress: input.attributes?.ip_address,
    mintedUserId,
    deliveryId: pending?.codeId ?? null,
    now: at,
  }
  const limits = sendLimitStatements(env.DB, limitSubject)
  const results = await batchWithLimits(env.DB, [...statements, ...issue, ...limits, owner], project.id)
  const row = results.at(-1)?.results[0] as PhoneOwnerRow | undefined
  if (!row) throw new Error('find-or-create returned no owner row')

  if (pending) {
    const replaced = (results[statements.length]?.results[0] as LiveCodeRow | undefined) ?? null
    await storeAndEnqueue(env, project.id, row.phone_id, phone.e164, pending, replaced).catch((err: unknown) =>
      undoSend(env.DB, limitSubject, pending.codeId, err),
    )
  }
  return { user_id: row.user_id, phone_id: row.phone_id, user_created: row.user_created === 1 }
}
