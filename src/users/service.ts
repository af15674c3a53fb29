import { now } from '../clock'
import { Batch, type Handle } from '../db/batch'
import { deletePhoneCodeStatement, deleteUserCodesStatement } from '../db/otp-codes'
import {
  attachStatements,
  deletePhoneStatement,
  deleteUserPhonesStatement,
  type PhoneOwnerRow,
  type PhoneRow,
  pendingExchangesStatement,
  phoneIdsStatement,
  phoneOwnerStatement,
  phoneUserStatement,
  releaseExpiredById,
  releaseExpiredByNumber,
  releasePendingExchangesStatement,
  userPhonesStatement,
} from '../db/phones'
import type { Project } from '../db/projects'
import {
  createUserStatements,
  deleteUserStatement,
  isDuplicateExternalId,
  type UserChanges,
  type UserRow,
  updateUserStatement,
  userByExternalIdStatement,
  userByIdStatement,
  userByPhoneStatement,
} from '../db/users'
import { StytchError } from '../errors'
import { newId, parseId } from '../ids'
import { runWithLimits, sendLimitStatements } from '../limits'
import { dropCodeRecord } from '../otp/code-store'
import { sendTarget } from '../otp/issue'
import type { CreateUserInput, ExchangePrimaryFactorInput, StytchUser, UpdateUserInput } from '../schemas'
import { MAX_METADATA_BYTES, metadataJson } from './metadata'
import { userObject } from './user-object'

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
async function runSettingExternalId(env: Env, project: Project, batch: Batch): Promise<void> {
  try {
    await runWithLimits(env.DB, batch, project.id)
  } catch (err) {
    if (isDuplicateExternalId(err)) throw new StytchError('duplicate_user_external_id')
    throw err
  }
}

/** Where a batch reads a user back: its row and its visible phones. */
interface UserReads {
  user: Handle<UserRow>
  phones: Handle<PhoneRow>
}

/** Adds the reads of the user `userId` with its visible phones at `at` to the batch. */
function addUserReads(batch: Batch, env: Env, project: Project, userId: string, at: number): UserReads {
  return {
    user: batch.add<UserRow>(userByIdStatement(env.DB, project.id, userId)),
    phones: batch.add<PhoneRow>(userPhonesStatement(env.DB, project.id, { userId }, at)),
  }
}

/** The user read back by addUserReads after its batch ran. */
function userAfter(reads: UserReads, at: number): StytchUser {
  const row = reads.user.first()
  if (!row) throw new StytchError('user_not_found')
  return userObject(row, reads.phones.rows(), at)
}

/**
 * POST /v1/users: a user with one unverified phone number, name, metadata and external id. A number
 * held by anyone in the project is duplicate_phone_number, except when its only claim is an
 * attachment (by /send, or a pending exchange): that is released and the number goes to the new user.
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
  const batch = new Batch()
  batch.addAll(
    createUserStatements(env.DB, {
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
  )
  // The project's new-users-per-hour limit counts users created here as it counts login_or_create's.
  batch.addAll(
    sendLimitStatements(env.DB, {
      projectId: project.id,
      settings: project.settings,
      phoneNumber: null,
      country: null,
      ip: [],
      mintedUserId: userId,
      deliveryId: null,
      now: at,
    }),
  )
  const reads = addUserReads(batch, env, project, userId, at)
  await runSettingExternalId(env, project, batch)
  if (!reads.user.first()) throw new StytchError('duplicate_phone_number')
  return { user: userAfter(reads, at), phoneId }
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
  const batch = new Batch()
  const update = batch.add(updateUserStatement(env.DB, project.id, userId, changes, MAX_METADATA_BYTES))
  const reads = addUserReads(batch, env, project, userId, at)
  await runSettingExternalId(env, project, batch)
  const user = userAfter(reads, at)
  if (update.changes === 0) throw new StytchError('metadata_too_large')
  return user
}

/**
 * PUT /v1/users/{user_id}/exchange_primary_factor, for a user with exactly one number (Stytch allows it
 * only for a user with one factor). The old number stays until the new one is proven: the new number
 * is attached to the user as a pending exchange of the old phone (src/db/phones.ts), with a new phone
 * id and the attach window of /send, and is no claim on the number meanwhile. The user's own code on
 * it (sent by /send with the user or a session) completes the exchange in the authenticate batch: the
 * old phone and its code go, and the user's other sessions end. A number anyone else holds, even as
 * an attachment in its window, is duplicate_phone_number. A new exchange replaces a pending one, and
 * exchanging to the current number cancels it. The reply is the user as it is stored: both numbers
 * while the exchange is pending.
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
  const before = new Batch()
  const { user, phones } = addUserReads(before, env, project, userId, at)
  const pending = before.add<{ phone_id: string }>(pendingExchangesStatement(env.DB, project.id, userId))
  await before.run(env.DB)
  if (!user.first()) throw new StytchError('user_not_found')
  // The user's factors: its numbers, except a pending exchange (which this exchange replaces).
  const pendingIds = new Set(pending.rows().map((p) => p.phone_id))
  const factors = phones.rows().filter((p) => !pendingIds.has(p.phone_id))
  const only = factors[0]
  if (factors.length !== 1 || !only) throw new StytchError('invalid_exchange_primary_factor_user')

  const projectId = project.id
  const batch = new Batch()
  batch.add(releaseExpiredByNumber(env.DB, projectId, number, at))
  const released = batch.add<{ phone_id: string }>(
    releasePendingExchangesStatement(env.DB, { projectId, userId, oldPhoneId: only.phone_id, keepNumber: number }),
  )
  if (only.phone_number !== number) {
    const phoneId = newId('phone', project.env)
    batch.addAll(
      attachStatements(env.DB, { projectId, phoneNumber: number, phoneId, userId, at, replaces: only.phone_id }),
    )
  }
  const holder = batch.add<PhoneOwnerRow>(phoneOwnerStatement(env.DB, projectId, number, { claims: 'any' }))
  const reads = addUserReads(batch, env, project, userId, at)
  await batch.run(env.DB)
  const after = userAfter(reads, at)
  const held = holder.first()
  if (held && held.user_id !== userId) throw new StytchError('duplicate_phone_number')
  // Lost a race since the read: the user's number changed meanwhile, so nothing was written.
  if (!held || !after.phone_numbers.some((p) => p.phone_id === only.phone_id)) {
    throw new StytchError('invalid_exchange_primary_factor_user')
  }
  await Promise.all(released.rows().map((p) => dropCodeRecord(env, p.phone_id)))
  return after
}

/** GET /v1/users/{user_id}: the user with its visible phones. */
export async function getUser(env: Env, project: Project, ref: string): Promise<StytchUser> {
  const userId = await resolveUserId(env, project, ref)
  const at = now()
  const batch = new Batch()
  const reads = addUserReads(batch, env, project, userId, at)
  await batch.run(env.DB)
  return userAfter(reads, at)
}

/** DELETE /v1/users/{user_id}: the user, its phones and their codes. Returns the deleted id. */
export async function deleteUser(env: Env, project: Project, ref: string): Promise<string> {
  const userId = await resolveUserId(env, project, ref)
  const batch = new Batch()
  const phones = batch.add<{ id: string }>(phoneIdsStatement(env.DB, project.id, userId))
  batch.add(deleteUserCodesStatement(env.DB, project.id, userId))
  batch.add(deleteUserPhonesStatement(env.DB, project.id, userId))
  const deleted = batch.add(deleteUserStatement(env.DB, project.id, userId))
  await batch.run(env.DB)
  if (deleted.changes === 0) throw new StytchError('user_not_found')
  const phoneIds = phones.rows().map((p) => p.id)
  await Promise.all(phoneIds.map((id) => dropCodeRecord(env, id)))
  return userId
}

/**
 * DELETE /v1/users/phone_numbers/{phone_id}: removes the number and its code from its user and
 * returns that user as it is afterwards. An attachment whose window passed is already gone (404).
 * With `ownerId` (the SDK's logged-in user) only that user's own number is removed: another user's is
 * phone_number_not_found, as if it did not exist. A phone row never changes user, so the owner read
 * before the deletion cannot be overtaken by it.
 */
export async function deletePhoneNumber(
  env: Env,
  project: Project,
  phoneId: string,
  ownerId?: string,
): Promise<StytchUser> {
  if (ownerId !== undefined) {
    const owner = await phoneUserStatement(env.DB, project.id, phoneId).first<{ user_id: string }>()
    if (owner?.user_id !== ownerId) throw new StytchError('phone_number_not_found')
  }
  const at = now()
  const batch = new Batch()
  batch.add(releaseExpiredById(env.DB, project.id, phoneId, at))
  const user = batch.add<UserRow>(userByPhoneStatement(env.DB, project.id, phoneId, at))
  const phones = batch.add<PhoneRow>(userPhonesStatement(env.DB, project.id, { phoneId }, at))
  batch.add(deletePhoneCodeStatement(env.DB, project.id, phoneId))
  batch.add(deletePhoneStatement(env.DB, project.id, phoneId))
  await batch.run(env.DB)
  const row = user.first()
  if (!row) throw new StytchError('phone_number_not_found')
  await dropCodeRecord(env, phoneId)
  const remaining = phones.rows().filter((p) => p.phone_id !== phoneId)
  return userObject(row, remaining, at)
}
