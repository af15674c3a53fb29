import { now } from '../clock'
import { bytesEqual, fromBase64Url } from '../crypto'
import {
  type AuthStateRow,
  type GateArgs,
  authStateStatement,
  consumeStatement,
  successStatements,
  wrongCodeStatements,
} from '../db/otp-gate'
import { releaseExpiredById, userPhonesStatement } from '../db/phones'
import type { Project } from '../db/projects'
import { type ErrorType, StytchError } from '../errors'
import { batchWithLimits, failedAuthStatements } from '../limits'
import { SANDBOX_PHONE_NUMBER } from '../phone'
import type { AuthenticateInput, StytchUser } from '../schemas'
import { type SessionResult, planSession, sessionResult, sessionStatements } from '../sessions/otp'
import { type PhoneRow, isLocked, userObject } from '../users/user-object'
import { type StoredCode, codeMac, dropCodeRecord, readStoredCode } from './code-store'

/** Stytch's sandbox code: authenticates the sandbox number's phone_id in test projects. */
export const SANDBOX_CODE = '000000'

/** The response fields besides request_id, status_code and reset_sessions. */
export interface AuthenticateResult extends SessionResult {
  user_id: string
  method_id: string
  user: StytchUser
}

/** What the presented code is, judged against the KV record before any D1 write. */
type Verdict =
  | { kind: 'match'; codeId: string }
  | { kind: 'wrong'; codeId: string; error: Extract<ErrorType, 'otp_code_not_found' | 'attribute_mismatch'> }
  | { kind: 'superseded' }
  | { kind: 'unknown' }

/**
 * POST /v1/otps/authenticate. One KV read (the code's keyed hash), the hash comparison in constant
 * time, then one D1 batch: release an expired attachment, the atomic gate updates for the verdict,
 * the success effects, and the read-back that tells the outcomes apart. On success the KV record is
 * deleted. D1 is the authority: a KV record naming another code than the gate's proves nothing.
 */
export async function authenticateCode(
  env: Env,
  project: Project,
  requestId: string,
  input: AuthenticateInput,
): Promise<AuthenticateResult> {
  const phoneId = input.method_id
  const verdict = await judge(env, phoneId, input, await readStoredCode(env, phoneId))
  const at = now()
  // A presented session must be live and the phone user's own; refused here, before the code is used.
  const session = await planSession(env, project, input, phoneId, at)
  const { settings } = project
  const sandbox = project.env === 'test' && input.code === SANDBOX_CODE
  const gate = (codeId: string): GateArgs => ({
    projectId: project.id,
    phoneId,
    requestId,
    at,
    codeId,
    maxAttempts: settings.otp_max_attempts,
  })

  const statements = [releaseExpiredById(env.DB, project.id, phoneId, at)]
  if (verdict.kind === 'match') statements.push(consumeStatement(env.DB, gate(verdict.codeId)))
  const wrongAt = statements.length
  let sessionAt: [number, number] = [0, 0]
  if (verdict.kind === 'wrong') {
    const lock = { lockThreshold: settings.user_lock_threshold, lockMs: settings.user_lock_seconds * 1000 }
    statements.push(...wrongCodeStatements(env.DB, { ...gate(verdict.codeId), ...lock }))
  }
  if (verdict.kind === 'match' || sandbox) {
    const sandboxNumber = sandbox ? SANDBOX_PHONE_NUMBER : null
    statements.push(...successStatements(env.DB, { projectId: project.id, phoneId, requestId, sandboxNumber }))
    // The session writes ride in this batch, gated on the same success: one transaction, no extra trip.
    const writes = sessionStatements(env.DB, project.id, session, phoneId, { phoneId, requestId, sandboxNumber }, at)
    sessionAt = [statements.length, statements.length + writes.length]
    statements.push(...writes)
  }
  // Per-IP failed authentications (after the gates, in this batch): a 429 if the IP is already at its
  // limit, whatever this attempt's outcome; otherwise the attempt is recorded unless it succeeded.
  statements.push(
    ...failedAuthStatements(env.DB, {
      projectId: project.id,
      settings,
      ipAddress: input.attributes?.ip_address,
      phoneId,
      requestId,
      sandboxNumber: sandbox ? SANDBOX_PHONE_NUMBER : null,
      now: at,
    }),
  )
  statements.push(
    authStateStatement(env.DB, project.id, phoneId),
    userPhonesStatement(env.DB, project.id, { phoneId }, at),
  )
  const results = await batchWithLimits(env.DB, statements, project.id)

  const state = results.at(-2)?.results[0] as AuthStateRow | undefined
  // The number was attached by /send and its 5-minute window passed: released, so the code is void.
  if ((results[0]?.meta.changes ?? 0) > 0) throw new StytchError('unable_to_auth_otp_code')
  if (!state) throw new StytchError('phone_number_not_found')
  const sandboxPhone = project.env === 'test' && state.phone_number === SANDBOX_PHONE_NUMBER
  const consumed = verdict.kind === 'match' && state.consumed_by === requestId
  if (consumed || (sandbox && sandboxPhone)) {
    if (consumed) await dropCodeRecord(env, phoneId)
    const phones = (results.at(-1)?.results ?? []) as PhoneRow[]
    const sessionFields = await sessionResult(project.id, session, results.slice(...sessionAt), at)
    return { user_id: state.user_id, method_id: phoneId, user: userObject(state, phones, at), ...sessionFields }
  }
  if (isLocked(state, at)) throw new StytchError('user_lock_limit_reached')
  if (sandboxPhone) throw new StytchError('otp_code_not_found')
  // A wrong code counted against the open gate; anything else met a dead gate (used, expired,
  // superseded, out of attempts) or no code at all.
  if (verdict.kind === 'wrong' && (results[wrongAt]?.meta.changes ?? 0) > 0) throw new StytchError(verdict.error)
  throw new StytchError('unable_to_auth_otp_code')
}

async function judge(env: Env, phoneId: string, input: AuthenticateInput, stored: StoredCode | null): Promise<Verdict> {
  if (!stored) return { kind: 'unknown' }
  if (await macMatches(env, phoneId, stored, input.code)) {
    return attributesMatch(stored, input)
      ? { kind: 'match', codeId: stored.code_id }
      : { kind: 'wrong', codeId: stored.code_id, error: 'attribute_mismatch' }
  }
  for (const old of stored.superseded ?? []) {
    if (await macMatches(env, phoneId, old, input.code)) return { kind: 'superseded' }
  }
  return { kind: 'wrong', codeId: stored.code_id, error: 'otp_code_not_found' }
}

async function macMatches(env: Env, phoneId: string, stored: { code_id: string; mac: string }, code: string) {
  let expected: Uint8Array
  try {
    expected = fromBase64Url(stored.mac)
  } catch {
    return false
  }
  return bytesEqual(await codeMac(env, phoneId, stored.code_id, code), expected)
}

/**
 * options.*_match_required: the value given now must equal the one stored at send time. Fails
 * closed when either side is missing (nothing to match is not a match).
 */
function attributesMatch(stored: StoredCode, input: AuthenticateInput): boolean {
  const { options, attributes } = input
  if (options?.ip_match_required) {
    if (!stored.ip_address || stored.ip_address.toLowerCase() !== attributes?.ip_address?.toLowerCase()) return false
  }
  if (options?.user_agent_match_required) {
    if (!stored.user_agent || stored.user_agent !== attributes?.user_agent) return false
  }
  return true
}
