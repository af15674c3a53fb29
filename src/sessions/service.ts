import { now } from '../clock'
import { Batch } from '../db/batch'
import { type PhoneRow, userPhonesStatement } from '../db/phones'
import { findProject, type Project } from '../db/projects'
import {
  deleteStatement,
  type FactorRow,
  factorsStatement,
  type SessionRow,
  type SessionSelector,
  sessionStatement,
  sessionUserStatement,
  touchStatement,
  userSessionsStatements,
} from '../db/sessions'
import { projectEnv } from '../db/shard'
import { type UserRow, userExistsStatement } from '../db/users'
import { StytchError } from '../errors'
import { parseId } from '../ids'
import type { SessionsAuthenticateInput, SessionsRevokeInput, StytchSession, StytchUser } from '../schemas'
import { resolveUserId } from '../users/service'
import { userObject } from '../users/user-object'
import {
  countGiven,
  credentialOf,
  projectSigningKey,
  type SessionCredential,
  sessionJwt,
  sessionSelector,
} from './credentials'
import { type PublicJwk, trustedKeys } from './keys'
import { mergeCustomClaims, parseClaims, sessionObject } from './object'
import { openSessionRow, openSessionRows } from './sealing'

/**
 * The sessions API (/v1/sessions/*). Every statement is scoped to the calling project, so another
 * project's sessions, tokens and JWTs are simply not found.
 */

export interface AuthenticatedSession {
  session: StytchSession
  /** The session's token: the one presented, or the sealed one when the session was named by a JWT. */
  session_token: string
  session_jwt: string
  user: StytchUser
}

/**
 * POST /v1/sessions/authenticate: the session named by exactly one of session_token / session_jwt
 * (an expired JWT still works while its session is live), marked accessed, optionally given a new
 * expiry and custom claims, with a fresh JWT. One D1 batch; a custom claims update reads the
 * current claims first (two).
 */
export async function authenticateSession(
  env: Env,
  project: Project,
  input: SessionsAuthenticateInput,
): Promise<AuthenticatedSession> {
  const credential = credentialOf(input)
  if (!credential) throw new StytchError('no_session_arguments')
  const at = now()
  const selector = await sessionSelector(env, project.id, credential, at)
  const key = projectSigningKey(env, project, at)
  key.catch(() => undefined) // awaited below; a failure must not surface as an unhandled rejection first

  let customClaims: string | undefined
  if (input.session_custom_claims) {
    const current = await sessionStatement(env.DB, project.id, selector, at).first<SessionRow>()
    if (!current) throw new StytchError('session_not_found')
    customClaims = mergeCustomClaims(parseClaims(current.custom_claims), input.session_custom_claims)
  }
  const minutes = input.session_duration_minutes
  const changes = { expiresAt: minutes === undefined ? undefined : at + minutes * 60_000, customClaims }
  const owner = 'tokenHash' in selector ? { sessionTokenHash: selector.tokenHash } : { userId: selector.userId ?? '' }
  const batch = new Batch()
  const touched = batch.add<SessionRow>(touchStatement(env.DB, project.id, selector, at, changes))
  const factors = batch.add<FactorRow>(factorsStatement(env.DB, project.id, selector, at))
  const user = batch.add<UserRow>(sessionUserStatement(env.DB, project.id, selector, at))
  const phones = batch.add<PhoneRow>(userPhonesStatement(env.DB, project.id, owner, at))
  await batch.run(env.DB)
  const row = touched.first()
  const userRow = user.first()
  if (!row || !userRow) throw new StytchError('session_not_found')

  const opened = await openSessionRow(env, project.id, row, 'token' in credential ? credential.token : undefined)
  const session = sessionObject(row, opened.attributes, factors.rows())
  return {
    session,
    session_token: opened.token,
    session_jwt: await sessionJwt(await key, project.id, session, at),
    user: userObject(userRow, phones.rows(), at),
  }
}

/**
 * The user of the live session `credential` names (one D1 read); session_not_found when it names none.
 * Used wherever a session stands for its user: /send with a session, the SDK's users/me.
 */
export async function sessionUserId(
  env: Env,
  projectId: string,
  credential: SessionCredential,
  at: number,
): Promise<string> {
  const selector = await sessionSelector(env, projectId, credential, at)
  const row = await sessionStatement(env.DB, projectId, selector, at).first<SessionRow>()
  if (!row) throw new StytchError('session_not_found')
  return row.user_id
}

/**
 * POST /v1/sessions/revoke: deletes the session named by exactly one of session_id, session_token or
 * session_jwt (an expired JWT may still revoke its session). Every token and JWT of it stops working
 * on this server at once; JWTs already issued stay locally verifiable until they expire (five minutes
 * at most), as with Stytch.
 */
export async function revokeSession(env: Env, project: Project, input: SessionsRevokeInput): Promise<void> {
  const given = countGiven(input.session_id, input.session_token, input.session_jwt)
  if (given === 0) throw new StytchError('no_session_revoke_arguments')
  if (given > 1) throw new StytchError('too_many_session_revoke_arguments')
  const at = now()
  const credential = credentialOf(input)
  const selector: SessionSelector = credential
    ? await sessionSelector(env, project.id, credential, at)
    : { sessionId: input.session_id ?? '' }
  const { meta } = await deleteStatement(env.DB, project.id, selector, at).run()
  if (meta.changes === 0) throw new StytchError('session_not_found')
}

/** GET /v1/sessions?user_id=: the user's live sessions, newest first (user_not_found if no such user). */
export async function listSessions(env: Env, project: Project, ref: string): Promise<StytchSession[]> {
  const userId = await resolveUserId(env, project, ref)
  const at = now()
  const { sessions, factors } = userSessionsStatements(env.DB, project.id, userId, at)
  const batch = new Batch()
  const user = batch.add(userExistsStatement(env.DB, project.id, userId))
  const rows = batch.add<SessionRow>(sessions)
  const factorRows = batch.add<FactorRow>(factors)
  await batch.run(env.DB)
  if (!user.first()) throw new StytchError('user_not_found')
  const all = factorRows.rows()
  const opened = await openSessionRows(env, project.id, rows.rows())
  return opened.map(({ row, opened }) => sessionObject(row, opened.attributes, all))
}

/**
 * GET /v1/sessions/jwks/{project_id} (public): the project's trusted public keys, read from the shard
 * its directory record names (`env`: the Worker's own bindings). A malformed or unknown project id
 * has no keys; so does a project that has not started a session yet. A project moving between
 * shards keeps publishing them: its keys are in the shard its record names until the flip, and in
 * the new one from then on.
 */
export async function projectJwks(env: Env, projectId: string): Promise<PublicJwk[]> {
  if (!parseId('project', projectId)) return []
  const at = now()
  const project = await findProject(env.DB, projectId, at)
  if (!project) return []
  return trustedKeys(projectEnv(env, project), projectId, at)
}
