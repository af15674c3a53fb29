import { Batch, type Handle } from '../db/batch'
import { phoneUserStatement } from '../db/phones'
import type { Project } from '../db/projects'
import {
  type FactorRow,
  factorsStatement,
  insertForPhoneStatement,
  type NewSession,
  type OtpSuccessGate,
  purgeExpiredStatement,
  type SessionRow,
  sessionStatement,
  touchStatement,
  upsertPhoneFactorStatement,
} from '../db/sessions'
import { StytchError } from '../errors'
import { newId } from '../ids'
import type { StytchSession } from '../schemas'
import { resolveUserId } from '../users/service'
import {
  credentialOf,
  hashSessionToken,
  newSessionToken,
  projectSigningKey,
  sessionJwt,
  sessionSelector,
} from './credentials'
import type { SigningKey } from './keys'
import { initialCustomClaims, mergeCustomClaims, parseClaims, sessionObject } from './object'
import { openSessionRow, sealSession, sessionSecret } from './sealing'
import { sessionUserId } from './service'

/**
 * The session half of the OTP endpoints. authenticate plans the session before its batch (anything
 * that can be refused is refused there, before the code is consumed), adds the session writes to
 * its batch gated on the OTP success, and builds the response fields after it. /send resolves a
 * presented session to its user.
 */

/** The session fields of an authenticate response. */
export interface SessionResult {
  session_token: string
  session_jwt: string
  session: StytchSession | null
}

interface SessionInput {
  session_token?: string | undefined
  session_jwt?: string | undefined
  session_duration_minutes?: number | undefined
  session_custom_claims?: Record<string, unknown> | undefined
  attributes?: { ip_address?: string | undefined; user_agent?: string | undefined } | undefined
}

/** What authenticate does about sessions: nothing, start one, or add the factor to a live one. */
export type SessionPlan =
  | { kind: 'none' }
  | { kind: 'new'; token: string; session: NewSession; key: Promise<SigningKey> }
  | {
      kind: 'existing'
      sessionId: string
      token: string
      changes: { expiresAt?: number | undefined; customClaims?: string | undefined }
      key: Promise<SigningKey>
    }

/**
 * Decides the session part of an authenticate request for `phoneId` at `at`. A presented session
 * must be live and belong to the phone's user (one D1 read); session_duration_minutes then extends
 * it and session_custom_claims update its claims. Without one, session_duration_minutes starts a
 * new session. Refusals (unknown session, another user's session, claims over 4 KB) throw here.
 */
export async function planSession(
  env: Env,
  project: Project,
  input: SessionInput,
  phoneId: string,
  at: number,
): Promise<SessionPlan> {
  const credential = credentialOf(input)
  const minutes = input.session_duration_minutes
  const expiresAt = minutes === undefined ? undefined : at + minutes * 60_000
  if (!credential && expiresAt === undefined) return { kind: 'none' }
  const key = projectSigningKey(env, project, at)
  key.catch(() => undefined) // awaited after the batch; a failure must not surface as unhandled first

  if (!credential) {
    const token = newSessionToken()
    const id = newId('session', project.env)
    const attributes = {
      ip_address: input.attributes?.ip_address ?? '',
      user_agent: input.attributes?.user_agent ?? '',
    }
    const session: NewSession = {
      id,
      projectId: project.id,
      tokenHash: await hashSessionToken(token),
      at,
      expiresAt: expiresAt ?? at,
      customClaims: initialCustomClaims(input.session_custom_claims),
      sealed: await sealSession(await sessionSecret(env), project.id, id, token, attributes),
    }
    return { kind: 'new', token, session, key }
  }

  const selector = await sessionSelector(env, project.id, credential, at)
  const batch = new Batch()
  const found = batch.add<SessionRow>(sessionStatement(env.DB, project.id, selector, at))
  const owner = batch.add<{ user_id: string }>(phoneUserStatement(env.DB, project.id, phoneId))
  await batch.run(env.DB)
  const row = found.first()
  if (!row) throw new StytchError('session_not_found')
  const phoneUser = owner.first()?.user_id
  // An unknown phone is left to authenticate itself (phone_number_not_found).
  if (phoneUser !== undefined && phoneUser !== row.user_id) throw new StytchError('user_id_mismatch')
  const claims = input.session_custom_claims
  return {
    kind: 'existing',
    sessionId: row.id,
    token: 'token' in credential ? credential.token : '',
    changes: {
      expiresAt,
      customClaims: claims ? mergeCustomClaims(parseClaims(row.custom_claims), claims) : undefined,
    },
    key,
  }
}

/** Where authenticate reads its session back: the session row and its factors. */
export interface SessionReads {
  session: Handle<SessionRow>
  factors: Handle<FactorRow>
}

/**
 * Adds the session writes to authenticate's batch, each conditional on the OTP success decided
 * earlier in that batch (`gate`), followed by two reads: the session and its factors. Adds nothing
 * for 'none' (null).
 */
export function addSessionStatements(
  batch: Batch,
  db: D1Database,
  projectId: string,
  plan: SessionPlan,
  phoneId: string,
  gate: OtpSuccessGate,
  at: number,
): SessionReads | null {
  if (plan.kind === 'none') return null
  if (plan.kind === 'new') {
    const selector = { sessionId: plan.session.id }
    batch.add(purgeExpiredStatement(db, projectId, phoneId, at, gate))
    batch.add(insertForPhoneStatement(db, plan.session, phoneId, gate))
    batch.add(upsertPhoneFactorStatement(db, projectId, plan.session.id, phoneId, at, gate))
    return {
      session: batch.add<SessionRow>(sessionStatement(db, projectId, selector, at)),
      factors: batch.add<FactorRow>(factorsStatement(db, projectId, selector, at)),
    }
  }
  const selector = { sessionId: plan.sessionId }
  batch.add(upsertPhoneFactorStatement(db, projectId, plan.sessionId, phoneId, at, gate))
  return {
    // The touch returns the session row as it is afterwards.
    session: batch.add<SessionRow>(touchStatement(db, projectId, selector, at, plan.changes, gate)),
    factors: batch.add<FactorRow>(factorsStatement(db, projectId, selector, at)),
  }
}

/**
 * The session fields of a successful authenticate, from the reads addSessionStatements added. A
 * presented session that was revoked or expired between the plan and the batch is
 * `session_not_found`, although the code has been used by then.
 */
export async function sessionResult(
  env: Env,
  projectId: string,
  plan: SessionPlan,
  reads: SessionReads | null,
  at: number,
): Promise<SessionResult> {
  if (plan.kind === 'none') return { session_token: '', session_jwt: '', session: null }
  if (!reads) throw new Error('the session statements were not in the authenticate batch')
  const row = reads.session.first()
  if (!row) {
    if (plan.kind === 'new') throw new Error('the session started in the authenticate batch cannot be read back')
    throw new StytchError('session_not_found')
  }
  // A session presented by its JWT answers with its token too, as Stytch does.
  const opened = await openSessionRow(env, projectId, row, plan.token || undefined)
  const session = sessionObject(row, opened.attributes, reads.factors.rows())
  const jwt = await sessionJwt(await plan.key, projectId, session, at)
  return { session_token: opened.token, session_jwt: jwt, session }
}

/**
 * /send: the user named by a presented session_token / session_jwt (its session must be live), else
 * the given user_id. A session and a user_id naming different users are refused.
 */
export async function sendUserId(
  env: Env,
  project: Project,
  input: { user_id?: string | undefined; session_token?: string | undefined; session_jwt?: string | undefined },
  at: number,
): Promise<string | undefined> {
  const credential = credentialOf(input)
  // An external id stands for its user's id.
  const userId = input.user_id === undefined ? undefined : await resolveUserId(env, project, input.user_id)
  if (!credential) return userId
  const sessionUser = await sessionUserId(env, project.id, credential, at)
  if (userId !== undefined && userId !== sessionUser) throw new StytchError('user_id_mismatch')
  return sessionUser
}
