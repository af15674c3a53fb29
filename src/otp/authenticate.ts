import { now } from '../clock'
import { Batch, type Handle } from '../db/batch'
import type { BrakeRow } from '../db/limit-counters'
import {
  type AuthStateRow,
  authStateStatement,
  consumeStatement,
  type GateArgs,
  gateToRecheck,
  type RecheckGate,
  successGate,
  successStatements,
  wrongCodeStatements,
} from '../db/otp-codes'
import { phonesFromJson, releaseExpiredById, removeReplacedPhoneStatement } from '../db/phones'
import type { Project } from '../db/projects'
import { revokeOnExchangeStatement } from '../db/sessions'
import { isLocked } from '../db/users'
import { type ErrorType, StytchError } from '../errors'
import {
  type AuthSubject,
  authBrake,
  failedAuthStatements,
  noteBrake,
  runWithLimits,
  smsConversionStatement,
  storedNumberCountry,
} from '../limits'
import { logEvent, recordEvent } from '../log'
import { setMetricDimensions } from '../metrics'
import { SANDBOX_PHONE_NUMBER } from '../phone'
import type { AuthenticateInput, StytchUser } from '../schemas'
import {
  addSessionStatements,
  planSession,
  type SessionPlan,
  type SessionReads,
  type SessionResult,
  sessionResult,
} from '../sessions/otp'
import { userObject } from '../users/user-object'
import { attributesMatch } from './attributes'
import {
  ALL_NEEDS,
  codeMacMatches,
  dropCodeRecord,
  gateCodeMacMatches,
  readStoredCode,
  type StoredCode,
  type SuccessNeeds,
} from './code-store'

/** Stytch's sandbox code: authenticates the sandbox number's phone_id in test projects. */
export const SANDBOX_CODE = '000000'

/** The response fields besides request_id, status_code and reset_sessions. */
export interface AuthenticateResult extends SessionResult {
  user_id: string
  method_id: string
  user: StytchUser
}

/**
 * What the presented code is, judged against the KV record (or the gate's hash) before any D1 write.
 * `known` on a wrong verdict: a hash in the KV record matched the code (its own or one it replaced),
 * though the attempt failed on the attributes.
 */
type Verdict =
  | { kind: 'match'; codeId: string }
  | {
      kind: 'wrong'
      codeId: string
      error: Extract<ErrorType, 'otp_code_not_found' | 'attribute_mismatch'>
      known?: boolean
    }
  | { kind: 'superseded' }
  | { kind: 'unknown' }

/** Everything an attempt's batch is built from besides the verdict, fixed before the first batch. */
interface Attempt {
  env: Env
  project: Project
  requestId: string
  input: AuthenticateInput
  phoneId: string
  at: number
  session: SessionPlan
  /** The sandbox code in a test project. */
  sandbox: boolean
  /** What a success can do on this phone, from the KV record (everything without one). */
  needs: SuccessNeeds
  /** The destination region the KV record kept, for the metrics (null: parsed from the number). */
  country: string | null
}

/** One batch run for a verdict, with the results read back afterwards. */
interface Pass {
  verdict: Verdict
  state: AuthStateRow | undefined
  /** The expired-attachment release (an attachment only): 1 change when it released the phone. */
  release: Handle | null
  /** The wrong-code attempt count on the gate (a wrong verdict only): 1 change when counted. */
  wrongAttempt: Handle | null
  /** The session read back (a success with a session plan only). */
  session: SessionReads | null
  /** The phone a completed exchange removed (a success only). */
  replaced: Handle<{ phone_id: string }> | null
}

/**
 * POST /v1/otps/authenticate. One KV read (the code's keyed hash), the hash comparison in constant
 * time, then one D1 batch: release an expired attachment, the atomic gate updates for the verdict,
 * the success effects, and the read-back that tells the outcomes apart. D1 is the authority: a used
 * code's KV record is left to expire (its gate is consumed), and a record naming another code than
 * the gate's proves nothing.
 *
 * KV is eventually consistent and last-write-wins, so the record read may be missing or an older
 * code's (two sends committing close together can land their KV writes in either order). The
 * read-back then shows a live gate naming another code, against which the batch counted nothing;
 * only in that case a second batch runs the attempt again with the verdict of the gate's own hash
 * (otp_codes.mac). The normal path keeps its single round trip.
 */
export async function authenticateCode(
  env: Env,
  project: Project,
  requestId: string,
  input: AuthenticateInput,
): Promise<AuthenticateResult> {
  const sandbox = project.env === 'test' && input.code === SANDBOX_CODE
  const fields = { project_id: project.id, method_id: input.method_id, sandbox }
  try {
    const result = await authenticateAttempt(env, project, requestId, input)
    recordEvent('otp.authenticate', { ...fields, outcome: 'success' })
    return result
  } catch (err) {
    // The outcome of every judged attempt is counted (conversion, brute force); an unexpected
    // failure is 'error' here and logged in full by the app's error handler.
    logEvent('info', 'otp.authenticate', {
      ...fields,
      outcome: err instanceof StytchError ? err.errorType : 'error',
    })
    throw err
  }
}

async function authenticateAttempt(
  env: Env,
  project: Project,
  requestId: string,
  input: AuthenticateInput,
): Promise<AuthenticateResult> {
  const phoneId = input.method_id
  const at = now()
  // The code's KV record and the session plan do not depend on each other: both at once. A presented
  // session must be live and the phone user's own; refused here, before the code is used.
  const [stored, session] = await Promise.all([
    readStoredCode(env, phoneId),
    planSession(env, project, input, phoneId, at),
  ])
  const verdict = await judge(env, project.id, phoneId, input, stored)
  const sandbox = project.env === 'test' && input.code === SANDBOX_CODE
  const needs = stored?.needs ?? ALL_NEEDS
  const country = stored?.country ?? null
  const attempt: Attempt = { env, project, requestId, input, phoneId, at, session, sandbox, needs, country }
  const checked = { checkedCodeId: stored?.code_id ?? null, maxAttempts: project.settings.otp_max_attempts }

  const first = await runPass(attempt, verdict, checked)
  const gate =
    first.state && !released(first) && !consumed(first, requestId)
      ? gateToRecheck(first.state, checked.checkedCodeId, at, checked.maxAttempts)
      : null
  if (!first.state || !gate) return conclude(attempt, first)
  // The stale-KV case, and the only second round trip: the verdict of D1's hash is final. The
  // record belongs to another code of the phone: what it says of the phone holds, not of the code.
  const recheck = await judgeAgainstGate(env, project.id, input, first.state, gate, verdict)
  return conclude(attempt, await runPass({ ...attempt, needs: { ...needs, sms: true } }, recheck, undefined))
}

/**
 * Builds and runs the attempt's batch for `verdict`. `recheck`, on the first batch only, holds back
 * the per-IP failure record when a second batch will judge the attempt again (failedAuthStatements).
 */
async function runPass(a: Attempt, verdict: Verdict, recheck: AuthSubject['recheck']): Promise<Pass> {
  const { env, project, phoneId, requestId, at } = a
  const { settings } = project
  const gate = (codeId: string): GateArgs => ({
    projectId: project.id,
    phoneId,
    requestId,
    at,
    codeId,
    maxAttempts: settings.otp_max_attempts,
  })

  // Statements that can do nothing for this phone, code or verdict are left out of the batch.
  const batch = new Batch()
  const release = a.needs.attached ? batch.add(releaseExpiredById(env.DB, project.id, phoneId, at)) : null
  if (verdict.kind === 'match') {
    batch.add(consumeStatement(env.DB, gate(verdict.codeId)))
    // A code an SMS carried and this request consumed counts as an SMS conversion (the pumping breaker).
    if (a.needs.sms) batch.add(smsConversionStatement(env.DB, { projectId: project.id, phoneId, requestId }))
  }
  let wrongAttempt: Handle | null = null
  let sessionReads: SessionReads | null = null
  if (verdict.kind === 'wrong') {
    const lock = { lockThreshold: settings.user_lock_threshold, lockMs: settings.user_lock_seconds * 1000 }
    const brake = authBrake(settings, at)
    const wrong = wrongCodeStatements(env.DB, { ...gate(verdict.codeId), ...lock, brake })
    wrongAttempt = batch.add(wrong.attempt)
    batch.add(wrong.failure)
  }
  let replaced: Handle<{ phone_id: string }> | null = null
  const maySucceed = verdict.kind === 'match' || a.sandbox
  if (maySucceed) {
    const sandboxNumber = a.sandbox ? SANDBOX_PHONE_NUMBER : null
    const success = successGate({ projectId: project.id, phoneId, requestId, sandboxNumber })
    // A success on a pending exchange (exchange_primary_factor) completes it, while the phone still
    // reads as pending: the user's other sessions are revoked and the replaced phone leaves the user.
    // The effects after that verify the phone, which ends the pending state. Only an attachment
    // can be a pending exchange.
    if (a.needs.attached) {
      batch.add(revokeOnExchangeStatement(env.DB, success.params, success.succeeded, keptSessionId(a.session)))
      replaced = batch.add(removeReplacedPhoneStatement(env.DB, success.params, success.succeeded))
    }
    batch.addAll(successStatements(env.DB, success))
    // The session writes ride in this batch, gated on the same success: one transaction, no extra trip.
    const gate = { phoneId, requestId, sandboxNumber }
    sessionReads = addSessionStatements(batch, env.DB, project.id, a.session, phoneId, gate, at)
  }
  // Failed authentications per IP scope and per project (after the gates, in this batch): a 429 if an
  // IP scope is already at its limit, whatever this attempt's outcome; otherwise the attempt is
  // recorded per IP unless it succeeded, and per project if the gate counted it on the live code.
  const failures = await failedAuthStatements(env.DB, env, {
    projectId: project.id,
    settings,
    ipAddress: a.input.attributes?.ip_address,
    phoneId,
    requestId,
    sandboxNumber: a.sandbox ? SANDBOX_PHONE_NUMBER : null,
    now: at,
    recheck,
    wrongCode: verdict.kind === 'wrong',
  })
  batch.addAll(failures.statements)
  const brake = failures.brake ? batch.add<BrakeRow>(failures.brake) : null
  // The state, with the user's phones for the User object when the attempt may succeed.
  const state = batch.add<AuthStateRow>(authStateStatement(env.DB, project.id, phoneId, maySucceed ? at : undefined))
  await runWithLimits(env.DB, batch, project.id)
  noteBrake(brake?.first(), project.id, settings)
  return { verdict, state: state.first(), release, wrongAttempt, session: sessionReads, replaced }
}

/** The session a successful authenticate extends or starts, which a completed exchange keeps. */
function keptSessionId(plan: SessionPlan): string | null {
  if (plan.kind === 'existing') return plan.sessionId
  return plan.kind === 'new' ? plan.session.id : null
}

// The number was attached (/send, exchange) and its 5-minute window passed: released, so the code is void.
const released = (pass: Pass) => (pass.release?.changes ?? 0) > 0

const consumed = (pass: Pass, requestId: string) =>
  pass.verdict.kind === 'match' && pass.state?.consumed_by === requestId

/** The reply for a pass's outcome: the response fields on success, otherwise the error to throw. */
async function conclude(a: Attempt, pass: Pass): Promise<AuthenticateResult> {
  const { env, project, phoneId, at } = a
  const { state, verdict } = pass
  if (released(pass)) throw new StytchError('unable_to_auth_otp_code')
  if (!state) throw new StytchError('phone_number_not_found')
  // The country the KV record kept at issue; only without one is the number parsed again.
  const country = storedNumberCountry(state.phone_number, a.country)
  if (country) setMetricDimensions({ country })
  const sandboxPhone = project.env === 'test' && state.phone_number === SANDBOX_PHONE_NUMBER
  const used = consumed(pass, a.requestId)
  if (used || (a.sandbox && sandboxPhone)) {
    // The used code's KV record stays until its TTL: D1's gate is consumed, so the record can never
    // authenticate again (a replay is refused like any dead code, test/authenticate.test.ts), and
    // the next code of the phone overwrites it. Deleting it would cost a KV write per login for nothing.
    const replaced = pass.replaced?.first()
    if (replaced) await dropCodeRecord(env, replaced.phone_id)
    const sessionFields = await sessionResult(env, project.id, a.session, pass.session, at)
    return {
      user_id: state.user_id,
      method_id: phoneId,
      user: userObject(state, phonesFromJson(state.phones_json), at),
      ...sessionFields,
    }
  }
  if (isLocked(state, at)) throw new StytchError('user_lock_limit_reached')
  if (sandboxPhone) throw new StytchError('otp_code_not_found')
  // A wrong code counted against the open gate; anything else met a dead gate (used, expired,
  // superseded, out of attempts) or no code at all.
  if (verdict.kind === 'wrong' && (pass.wrongAttempt?.changes ?? 0) > 0) throw new StytchError(verdict.error)
  throw new StytchError('unable_to_auth_otp_code')
}

/**
 * The verdict from the KV record. With options.*_match_required the attributes are judged first and
 * on their own: a mismatch is the same failed attempt (401 attribute_mismatch, counted against the
 * current code) whether the code was right, wrong or replaced, so the reply is no oracle for the code.
 */
async function judge(
  env: Env,
  projectId: string,
  phoneId: string,
  input: AuthenticateInput,
  stored: StoredCode | null,
): Promise<Verdict> {
  if (!stored) return { kind: 'unknown' }
  const [attributesOk, current] = await Promise.all([
    attributesMatch(env, projectId, stored, input),
    macMatches(env, phoneId, stored, input.code),
  ])
  let replaced = false
  if (!current) {
    for (const old of stored.superseded ?? []) {
      if (await macMatches(env, phoneId, old, input.code)) {
        replaced = true
        break
      }
    }
  }
  if (!attributesOk) {
    return { kind: 'wrong', codeId: stored.code_id, error: 'attribute_mismatch', known: current || replaced }
  }
  if (current) return { kind: 'match', codeId: stored.code_id }
  if (replaced) return { kind: 'superseded' }
  return { kind: 'wrong', codeId: stored.code_id, error: 'otp_code_not_found' }
}

/**
 * The verdict from the gate's own hash, for an attempt first judged against a stale or missing KV
 * record. The attributes are checked against those the gate row kept from the send, not the stale
 * record's, which may be another send's. A code the stale record knew (its own, or one it had
 * replaced) that is not the gate's is superseded, not a wrong guess: nothing is counted for it.
 */
async function judgeAgainstGate(
  env: Env,
  projectId: string,
  input: AuthenticateInput,
  state: AuthStateRow,
  gate: RecheckGate,
  kvVerdict: Verdict,
): Promise<Verdict> {
  const sent = {
    ip_hash: state.gate_ip_hash,
    ua_hash: state.gate_ua_hash,
    ip_address: state.gate_ip_address,
    user_agent: state.gate_user_agent,
  }
  const [attributesOk, codeOk] = await Promise.all([
    attributesMatch(env, projectId, sent, input),
    gateCodeMacMatches(env, projectId, state.phone_number, gate.codeId, input.code, gate.mac),
  ])
  if (!attributesOk) return { kind: 'wrong', codeId: gate.codeId, error: 'attribute_mismatch' }
  if (codeOk) return { kind: 'match', codeId: gate.codeId }
  // A match, a superseded code, or an attribute failure with a hash that matched: the record knew the code.
  const known =
    kvVerdict.kind === 'match' || kvVerdict.kind === 'superseded' || (kvVerdict.kind === 'wrong' && kvVerdict.known)
  return known ? { kind: 'superseded' } : { kind: 'wrong', codeId: gate.codeId, error: 'otp_code_not_found' }
}

function macMatches(env: Env, phoneId: string, stored: { code_id: string; mac: string }, code: string) {
  return codeMacMatches(env, phoneId, stored.code_id, code, stored.mac)
}
