import { now } from '../clock'
import { fromBase64Url, generateCode, keyedHash, keyedHashMatches, sealCurrent, toBase64Url } from '../crypto'
import { ownsNumber } from '../db/phones'
import { rotatingSecret } from '../env'
import { errorName, logEvent } from '../log'
import type { AttributesInput, Locale } from '../schemas'
import { jobAad, type WhatsAppJob } from '../whatsapp/job'
import { type AttributeHashes, hashAttributes, type StoredAttributes } from './attributes'

/**
 * A freshly issued code, before it is stored. `code` is the only plaintext copy; it leaves this
 * module either as a keyed hash (KV, and `gateMac` in D1) or encrypted (the delivery job).
 */
export interface PendingCode {
  code: string
  codeId: string
  /** gateCodeMac of the code, base64url: goes into the D1 gate row with the code's id. */
  gateMac: string
  createdAt: number
  expiresAt: number
  expirationMinutes: number
  locale: Locale
  /** Keyed hashes of the send-time attributes (never the clear values). */
  attributes: AttributeHashes
}

/**
 * What KV holds under otp:<phone_id>: never the code, only its keyed hash; never the send-time IP or
 * user agent, only their keyed hashes (records from before hashing may still carry clear values).
 */
export interface StoredCode extends StoredAttributes {
  v: 1
  code_id: string
  mac: string
  expires_at: number
  /** Live codes this one replaced (newest first), so presenting one is told apart from a wrong guess. */
  superseded?: SupersededCode[]
}

/** A code that was still live when a newer one replaced it: its id, keyed hash and expiry. */
export interface SupersededCode {
  code_id: string
  mac: string
  expires_at: number
}

/** The phone's live code as the issuing batch found it before replacing it. */
export interface LiveCodeRow {
  code_id: string
  expires_at: number
}

// Codes live at most 10 minutes and sends are rate limited, so a handful covers every live code.
const MAX_SUPERSEDED = 5

export const codeKey = (phoneId: string) => `otp:${phoneId}`

/**
 * A new code for `phoneNumber` (E.164) in `projectId`, with its gate hash already computed: the
 * statements that store it must be built before the batch that may create the phone (and its id).
 */
export async function newPendingCode(
  env: Env,
  projectId: string,
  phoneNumber: string,
  expirationMinutes: number,
  locale: Locale,
  attributes: AttributesInput | undefined,
): Promise<PendingCode> {
  const createdAt = now()
  const code = generateCode()
  const codeId = crypto.randomUUID()
  const [gateMac, hashes] = await Promise.all([
    gateCodeMac(env, projectId, phoneNumber, codeId, code),
    hashAttributes(env, projectId, attributes),
  ])
  return {
    code,
    codeId,
    gateMac: toBase64Url(gateMac),
    createdAt,
    expiresAt: createdAt + expirationMinutes * 60_000,
    expirationMinutes,
    locale,
    attributes: hashes,
  }
}

const codeMessage = (phoneId: string, codeId: string, code: string) => `otp:v1:${phoneId}:${codeId}:${code}`
const gateMessage = (projectId: string, phoneNumber: string, codeId: string, code: string) =>
  `otp:gate:v1:${projectId}:${phoneNumber}:${codeId}:${code}`

/** HMAC-SHA-256 with the pepper over the phone, the code's id and the code: bound to both. */
export async function codeMac(env: Env, phoneId: string, codeId: string, code: string): Promise<Uint8Array> {
  return keyedHash(rotatingSecret(env, 'OTP_PEPPER'), codeMessage(phoneId, codeId, code))
}

/**
 * Whether `code` is the one behind a stored codeMac (base64url), under the current pepper or, during
 * a rotation, the previous one: codes issued before the rotation stay valid for their lifetime.
 */
export function codeMacMatches(env: Env, phoneId: string, codeId: string, code: string, storedMac: string) {
  return macMatches(env, codeMessage(phoneId, codeId, code), storedMac)
}

/** Like codeMacMatches, for the gate row's hash (gateCodeMac). */
export function gateCodeMacMatches(
  env: Env,
  projectId: string,
  phoneNumber: string,
  codeId: string,
  code: string,
  storedMac: string,
) {
  return macMatches(env, gateMessage(projectId, phoneNumber, codeId, code), storedMac)
}

/** Constant-time check of a stored base64url hash (malformed: no match). */
async function macMatches(env: Env, message: string, storedMac: string): Promise<boolean> {
  let expected: Uint8Array
  try {
    expected = fromBase64Url(storedMac)
  } catch {
    return false
  }
  return keyedHashMatches(rotatingSecret(env, 'OTP_PEPPER'), message, expected)
}

/**
 * The code's keyed hash in the D1 gate row (otp_codes.mac), checked only when KV lags behind the
 * gate. It is bound to the project and the number rather than the phone_id, which a new number only
 * gets inside the issuing batch; its own domain prefix keeps it from ever standing in for a KV mac.
 */
export async function gateCodeMac(
  env: Env,
  projectId: string,
  phoneNumber: string,
  codeId: string,
  code: string,
): Promise<Uint8Array> {
  return keyedHash(rotatingSecret(env, 'OTP_PEPPER'), gateMessage(projectId, phoneNumber, codeId, code))
}

/**
 * Statements that make `pending` the phone's current code inside the caller's D1 batch: the gate
 * row (attempts reset, not consumed, with the code's gate hash and the send-time attributes' hashes) and the
 * delivery record. The phone is addressed by number so the statements work in the same batch that
 * creates it. With `ownerUserId` they write nothing unless that user holds the number (/send
 * attaching a number must not issue a code for another user); without it, nothing unless the number's
 * holder is its real owner rather than an unverified attachment (src/db/phones.ts).
 */
export function codeStatements(
  db: D1Database,
  projectId: string,
  phoneNumber: string,
  pending: PendingCode,
  ownerUserId: string | null = null,
): D1PreparedStatement[] {
  const issuedFor = `(user_id = ?6 OR (?6 IS NULL AND ${ownsNumber()}))`
  return [
    db
      .prepare(
        `INSERT INTO otp_codes (phone_id, project_id, code_id, mac, expires_at, attempts, consumed_at, consumed_by,
           ip_address, user_agent, ip_hash, ua_hash, created_at)
         SELECT id, ?1, ?3, ?7, ?4, 0, NULL, NULL, NULL, NULL, ?8, ?9, ?5 FROM phones
         WHERE project_id = ?1 AND phone_number = ?2 AND ${issuedFor}
         ON CONFLICT (phone_id) DO UPDATE SET code_id = excluded.code_id, mac = excluded.mac,
           expires_at = excluded.expires_at, attempts = 0, consumed_at = NULL, consumed_by = NULL,
           ip_address = NULL, user_agent = NULL, ip_hash = excluded.ip_hash, ua_hash = excluded.ua_hash,
           created_at = excluded.created_at`,
      )
      .bind(
        projectId,
        phoneNumber,
        pending.codeId,
        pending.expiresAt,
        pending.createdAt,
        ownerUserId,
        pending.gateMac,
        pending.attributes.ip_hash ?? null,
        pending.attributes.ua_hash ?? null,
      ),
    db
      .prepare(
        `INSERT INTO deliveries (id, project_id, phone_id, status, expires_at, created_at, updated_at)
         SELECT ?3, ?1, id, 'queued', ?4, ?5, ?5 FROM phones
         WHERE project_id = ?1 AND phone_number = ?2 AND ${issuedFor}`,
      )
      .bind(projectId, phoneNumber, pending.codeId, pending.expiresAt, pending.createdAt, ownerUserId),
  ]
}

/**
 * The phone's live code (unconsumed, unexpired) before the batch replaces it; goes right before
 * codeStatements. Only when there is one does storeAndEnqueue read the old KV record, so a first
 * send never looks up a missing key (KV caches negative lookups).
 */
export function liveCodeStatement(
  db: D1Database,
  projectId: string,
  phoneNumber: string,
  at: number,
): D1PreparedStatement {
  return db
    .prepare(
      `SELECT c.code_id, c.expires_at FROM otp_codes c JOIN phones p ON p.id = c.phone_id
       WHERE p.project_id = ?1 AND p.phone_number = ?2 AND c.consumed_at IS NULL AND c.expires_at > ?3`,
    )
    .bind(projectId, phoneNumber, at)
}

/**
 * After the D1 batch committed: the keyed hash goes to KV (one key per phone, so a new code
 * replaces the old one; TTL = the code's lifetime, >= KV's 60 s minimum) and, at the same time,
 * exactly one delivery job with the code encrypted goes on the queue. `replaced` is the live code the batch
 * replaced (liveCodeStatement); its hash is carried over so authenticate can answer "superseded".
 */
export async function storeAndEnqueue(
  env: Env,
  projectId: string,
  phoneId: string,
  phoneNumber: string,
  pending: PendingCode,
  replaced: LiveCodeRow | null = null,
): Promise<void> {
  const ids = { id: pending.codeId, phone_id: phoneId, phone_number: phoneNumber }
  const [mac, superseded, code] = await Promise.all([
    codeMac(env, phoneId, pending.codeId, pending.code),
    replaced ? supersededCodes(env, phoneId, pending) : [],
    sealCurrent(rotatingSecret(env, 'CODE_ENCRYPTION_KEY'), pending.code, jobAad(ids)),
  ])
  const stored: StoredCode = {
    v: 1,
    code_id: pending.codeId,
    mac: toBase64Url(mac),
    expires_at: pending.expiresAt,
    ...pending.attributes,
  }
  if (superseded.length > 0) stored.superseded = superseded
  const job: WhatsAppJob = {
    v: 1,
    ...ids,
    project_id: projectId,
    locale: pending.locale,
    expires_at: pending.expiresAt,
    code,
  }
  // Neither needs the other: the consumer never reads KV, and authenticate waits for the code to
  // arrive anyway. If either fails the caller's undo closes the delivery, so a job that did reach
  // the queue is dropped by the consumer.
  await Promise.all([
    env.OTP_KV.put(codeKey(phoneId), JSON.stringify(stored), {
      expirationTtl: Math.max(60, pending.expirationMinutes * 60),
    }),
    env.WHATSAPP_QUEUE.send(job, { contentType: 'json' }),
  ])
}

export async function readStoredCode(env: Env, phoneId: string): Promise<StoredCode | null> {
  const stored = await env.OTP_KV.get<StoredCode>(codeKey(phoneId), 'json')
  return stored && stored.v === 1 ? stored : null
}

/**
 * Deletes the phone's code record once D1 has made it useless (the code consumed, the phone or its
 * user deleted). Best effort: D1 is the authority, so a record left behind can never authenticate
 * (its gate is consumed or its phone is gone) and expires with its TTL. Failing the request here
 * would report an error for work that is done and cannot be repeated (a consumed code, a deletion).
 */
export async function dropCodeRecord(env: Env, phoneId: string): Promise<void> {
  try {
    await env.OTP_KV.delete(codeKey(phoneId))
  } catch (err) {
    logEvent('warn', 'otp.code_record_not_deleted', { phone_id: phoneId, error: errorName(err) })
  }
}

/**
 * The still-live codes of the record being replaced, newest first. A stale read only loses history,
 * and so does a failed one: the D1 batch has already committed, and the history only tells a
 * superseded code from a wrong one.
 */
async function supersededCodes(env: Env, phoneId: string, pending: PendingCode): Promise<SupersededCode[]> {
  let previous: StoredCode | null
  try {
    previous = await readStoredCode(env, phoneId)
  } catch (err) {
    logEvent('warn', 'otp.code_history_unread', { phone_id: phoneId, error: errorName(err) })
    return []
  }
  if (!previous) return []
  const { code_id, mac, expires_at } = previous
  return [{ code_id, mac, expires_at }, ...(previous.superseded ?? [])]
    .filter((c) => c.expires_at > pending.createdAt && c.code_id !== pending.codeId)
    .slice(0, MAX_SUPERSEDED)
}
