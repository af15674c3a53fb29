import { now } from '../clock'
import {
  deletePhoneStatements,
  deleteUserStatements,
  phoneIdsStatement,
  releaseExpiredById,
  userByIdStatement,
  userByPhoneStatement,
  userPhonesStatement,
} from '../db/phones'
import type { Project } from '../db/projects'
import { StytchError } from '../errors'
import { dropCodeRecord } from '../otp/code-store'
import type { StytchUser } from '../schemas'
import { type PhoneRow, type UserRow, userObject } from './user-object'

/**
 * The Users API. Every statement is scoped to the calling project, so another project's ids are
 * simply not found. Each call is one D1 batch; deletions then drop the phones' code records in KV.
 */

/** GET /v1/users/{user_id}: the user with its visible phones. */
export async function getUser(env: Env, project: Project, userId: string): Promise<StytchUser> {
  const at = now()
  const [user, phones] = await env.DB.batch([
    userByIdStatement(env.DB, project.id, userId),
    userPhonesStatement(env.DB, project.id, { userId }, at),
  ])
  const row = user?.results[0] as UserRow | undefined
  if (!row) throw new StytchError('user_not_found')
  return userObject(row, (phones?.results ?? []) as PhoneRow[], at)
}

/** DELETE /v1/users/{user_id}: the user, its phones and their codes. Returns the deleted id. */
export async function deleteUser(env: Env, project: Project, userId: string): Promise<string> {
  const results = await env.DB.batch([
    phoneIdsStatement(env.DB, project.id, userId),
    ...deleteUserStatements(env.DB, project.id, userId),
  ])
  if ((results.at(-1)?.meta.changes ?? 0) === 0) throw new StytchError('user_not_found')
  const phoneIds = ((results[0]?.results ?? []) as { id: string }[]).map((p) => p.id)
  await Promise.all(phoneIds.map((id) => dropCodeRecord(env, id)))
  return userId
}

/**
 * DELETE /v1/users/phone_numbers/{phone_id}: removes the number and its code from its user and
 * returns that user as it is afterwards. An attachment whose window passed is already gone (404).
 */
export async function deletePhoneNumber(env: Env, project: Project, phoneId: string): Promise<StytchUser> {
  const at = now()
  const [, user, phones] = await env.DB.batch([
    releaseExpiredById(env.DB, project.id, phoneId, at),
    userByPhoneStatement(env.DB, project.id, phoneId, at),
    userPhonesStatement(env.DB, project.id, { phoneId }, at),
    ...deletePhoneStatements(env.DB, project.id, phoneId),
  ])
  const row = user?.results[0] as UserRow | undefined
  if (!row) throw new StytchError('phone_number_not_found')
  await dropCodeRecord(env, phoneId)
  const remaining = ((phones?.results ?? []) as PhoneRow[]).filter((p) => p.phone_id !== phoneId)
  return userObject(row, remaining, at)
}
