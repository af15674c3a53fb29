import { now } from '../clock'
import {
  deletePhoneStatements,
  deleteUserStatements,
  exchangePhoneStatements,
  numberHolderStatement,
  phoneIdsStatement,
  releaseExpiredById,
  userByIdStatement,
  userByPhoneStatement,
  userPhonesStatement,
} from '../db/phones'
import type { Project } from '../db/projects'
import {
  createUserStatements,
  isDuplicateExternalId,
  type UserChanges,
  updateUserStatement,
  userByExternalIdStatement,
} from '../db/users'
import { StytchError } from '../errors'
import { newId, parseId } from '../ids'
import { batchWithLimits, sendLimitStatements } from '../limits'
import { dropCodeRecord } from '../otp/code-store'
import { sendTarget } from '../otp/issue'
import type { CreateUserInput, ExchangePrimaryFactorInput, StytchUser, UpdateUserInput } from '../schemas'
import { MAX_METADATA_BYTES, metadataJson } from './metadata'
import { type PhoneRow, type UserRow, userObject } from './user-object'

/**
 * The Users API. Every statement is scoped to the calling project, so another project's ids are
 * simply not found. Each call is one D1 batch (an external id costs one read before it; exchanging a
 * phone reads the state first); deletions then drop the phones' code records in KV.
 */

/**
 * The user id a `user_id` field names: itself when it is one of our user ids (no storage access),
 * else the user holding it as external_id in the project (one indexed read), else user_not_found.
 */
export async function resolveUserId(env: Env, project: Project, ref: string): Promise<string> {
  if (parseId('user', ref) !== null) return ref
  const row = await userByExternalIdStatement(env.DB, project.id, ref).first<{ id: string }>()
  if (!row) throw new StytchError('user_not_found')
  return row.id
}

/**
 * Runs a batch that may set an external id (another user holding it is duplicate_user_external_id)
 * and may carry limit statements (a tripped limit is too_many_requests).
 */
async function batchSettingExternalId(env: Env, project: Project, statements: D1PreparedStatement[]) {
  try {
    return await batchWithLimits(env.DB, statements, project.id)
  } catch (err) {
    if (isDuplicateExternalId(err)) throw new StytchError('duplicate_user_external_id')
    throw err
  }
}

/** The user row and phones read back at the end of a batch (the last two results). */
function userAfter(results: readonly D1Result[], at: number): StytchUser {
  const row = results.at(-2)?.results[0] as UserRow | undefined
  if (!row) throw new StytchError('user_not_found')
  return userObject(row, (results.at(-1)?.results ?? []) as PhoneRow[], at)
}

/**
 * POST /v1/users: a user with one unverified phone number, name, metadata and external id. A number
 * held by anyone in the project is duplicate_phone_number, except when its only claim is an
 * unverified /send attachment: that is released and the number goes to the new user.
 */
export async function createUser(
  env: Env,
  project: Project,
  input: CreateUserInput,
): Promise<{ user: StytchUser; phoneId: string }> {
  const target = sendTarget(project, input.phone_number)
  const at = now()
  const userId = newId('user', project.env)
  const phoneId = newId('phone', project.env)
  const results = await batchSettingExternalId(env, project, [
    ...createUserStatements(env.DB, {
      projectId: project.id,
      userId,
      phoneId,
      phoneNumber: target.phone.e164,
      status: input.create_user_as_pending ? 'pending' : 'active',
      at,
      name: input.name ?? {},
      trustedMetadata: metadataJson(input.trusted_metadata),
      untrustedMetadata: metadataJson(input.untrusted_metadata),
      externalId: input.external_id ?? null,
    }),
    // The project's new-users-per-hour limit counts users created here as it counts login_or_create's.
    ...sendLimitStatements(env.DB, {
      projectId: project.id,
      settings: project.settings,
      phoneNumber: null,
      country: null,
      ip: [],
      mintedUserId: userId,
      deliveryId: null,
      now: at,
    }),
    userByIdStatement(env.DB, project.id, userId),
    userPhonesStatement(env.DB, project.id, { userId }, at),
  ])
  if (!results.at(-2)?.results.length) throw new StytchError('duplicate_phone_number')
  return { user: userAfter(results, at), phoneId }
}

/**
 * PUT /v1/users/{user_id}: name parts given replace, metadata objects are merged (null removes a
 * key), external_id is set. One batch; a merged metadata object over the cap changes nothing.
 */
export async function updateUser(env: Env, project: Project, ref: string, input: UpdateUserInput): Promise<StytchUser> {
  const changes: UserChanges = {
    name: input.name,
    trustedMetadata: metadataJson(input.trusted_metadata),
    untrustedMetadata: metadataJson(input.untrusted_metadata),
    externalId: input.external_id,
  }
  return changeUser(env, project, ref, changes)
}

/** DELETE /v1/users/{user_id}/external_id: the user without its external id (a no-op when unset). */
export async function deleteExternalId(env: Env, project: Project, ref: string): Promise<StytchUser> {
  return changeUser(env, project, ref, { trustedMetadata: null, untrustedMetadata: null, clearExternalId: true })
}

async function changeUser(env: Env, project: Project, ref: string, changes: UserChanges): Promise<StytchUser> {
  const userId = await resolveUserId(env, project, ref)
  const at = now()
  const results = await batchSettingExternalId(env, project, [
    updateUserStatement(env.DB, project.id, userId, changes, MAX_METADATA_BYTES),
    userByIdStatement(env.DB, project.id, userId),
    userPhonesStatement(env.DB, project.id, { userId }, at),
  ])
  const user = userAfter(results, at)
  if ((results[0]?.meta.changes ?? 0) === 0) throw new StytchError('metadata_too_large')
  return user
}

/**
 * PUT /v1/users/{user_id}/exchange_primary_factor: replaces the user's only phone number by another,
 * as Stytch allows it only for a user with exactly one factor. The new number starts unverified
 * (verified by the user's next successful code, as any number is) and gets a new phone id; codes of
 * the old number die with it. A number held by another user, or verified by anyone, is
 * duplicate_phone_number; an unverified /send attachment of it is no claim and is released.
 */
export async function exchangePrimaryFactor(
  env: Env,
  project: Project,
  ref: string,
  input: ExchangePrimaryFactorInput,
): Promise<StytchUser> {
  if (input.email_address !== undefined || input.phone_number === undefined) {
    throw new StytchError('invalid_exchange_primary_factor_fields')
  }
  const target = sendTarget(project, input.phone_number)
  const userId = await resolveUserId(env, project, ref)
  const at = now()
  const number = target.phone.e164
  const [user, phones, holder] = await env.DB.batch([
    userByIdStatement(env.DB, project.id, userId),
    userPhonesStatement(env.DB, project.id, { userId }, at),
    numberHolderStatement(env.DB, project.id, number),
  ])
  const row = user?.results[0] as UserRow | undefined
  if (!row) throw new StytchError('user_not_found')
  const current = (phones?.results ?? []) as PhoneRow[]
  const only = current[0]
  if (current.length !== 1 || !only) throw new StytchError('invalid_exchange_primary_factor_user')
  if (only.phone_number === number) return userObject(row, current, at)
  const held = holder?.results[0] as { attach_expires_at: number | null; verified: number } | undefined
  if (held && (held.verified === 1 || held.attach_expires_at === null)) throw new StytchError('duplicate_phone_number')

  const newPhoneId = newId('phone', project.env)
  const results = await env.DB.batch([
    ...exchangePhoneStatements(env.DB, {
      projectId: project.id,
      userId,
      oldPhoneId: only.phone_id,
      newPhoneId,
      phoneNumber: number,
      at,
    }),
    userByIdStatement(env.DB, project.id, userId),
    userPhonesStatement(env.DB, project.id, { userId }, at),
  ])
  const after = userAfter(results, at)
  // Lost a race since the read: the user's phone changed, or someone took the number meanwhile.
  if (!after.phone_numbers.some((p) => p.phone_id === newPhoneId)) {
    throw new StytchError(
      after.phone_numbers.length === 1 ? 'duplicate_phone_number' : 'invalid_exchange_primary_factor_user',
    )
  }
  await dropCodeRecord(env, only.phone_id)
  return after
}

/** GET /v1/users/{user_id}: the user with its visible phones. */
export async function getUser(env: Env, project: Project, ref: string): Promise<StytchUser> {
  const userId = await resolveUserId(env, project, ref)
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
export async function deleteUser(env: Env, project: Project, ref: string): Promise<string> {
  const userId = await resolveUserId(env, project, ref)
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
