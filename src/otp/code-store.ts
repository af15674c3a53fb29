import { now } from '../clock'
import { fromBase64Url, generateCode, keyedHash, keyedHashMatches, sealCurrent, toBase64Url } from '../crypto'
import type { LiveCodeRow, NewCode } from '../db/otp-codes'
import { type DeliveryJob, type DeliveryPlan, jobAad } from '../delivery/job'
import { rotatingSecret } from '../env'
import { errorName, logEvent } from '../log'
import type { AttributesInput, Locale } from '../schemas'
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
  /** The channel it goes out on, and what that channel's job carries. */
  plan: DeliveryPlan
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
  /** The destination region (sendCountry), for the metrics; absent from records written before it was kept. */
  country?: string
  /**
   * Which effects a success on this phone and code can have, so authenticate's batch carries only
   * statements that can do work; absent from records written before it was kept (then all of them).
   */
  needs?: SuccessNeeds
}

/**
 * What a success can do besides consuming the code, known when the code is issued:
 * - `attached`: the phone was an attachment (/send to a user, exchange_primary_factor). Only an
 *   attachment can lapse (its window released on authenticate) or be a pending exchange (whose
 *   success revokes the user's other sessions and removes the replaced phone). A phone row is an
 *   attachment from its insert until it is verified or deleted, never later, so this holds for
 *   every record of the phone.
 * - `sms`: the code may go out by SMS (an SMS send, or WhatsApp with the SMS fallback), so its
 *   success counts as an SMS conversion for the pumping breaker.
 */
export interface SuccessNeeds {
  attached: boolean
  sms: boolean
}

/** Everything, for a record that does not say (older records, or none). */
export const ALL_NEEDS: SuccessNeeds = { attached: true, sms: true }

/** A code that was still live when a newer one replaced it: its id, keyed hash and expiry. */
export interface SupersededCode {
  code_id: string
  mac: string
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
  plan: DeliveryPlan = { channel: 'whatsapp', fallback: false },
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
    plan,
  }
}

/** The gate row's values for `pending` (src/db/otp-codes.ts stores them). */
export function gateRow(pending: PendingCode): NewCode {
  return {
    codeId: pending.codeId,
    mac: pending.gateMac,
    createdAt: pending.createdAt,
    expiresAt: pending.expiresAt,
    ipHash: pending.attributes.ip_hash ?? null,
    uaHash: pending.attributes.ua_hash ?? null,
    smsCountry: pending.plan.channel === 'sms' ? pending.plan.country : null,
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
 * After the D1 batch committed: the keyed hash goes to KV (one key per phone, so a new code
 * replaces the old one; TTL = the code's lifetime, >= KV's 60 s minimum) and, at the same time,
 * exactly one delivery job with the code encrypted goes on the queue (one queue for both channels). `replaced` is the live code the batch
 * replaced (liveCodeStatement in src/db/otp-codes.ts); its hash is carried over so authenticate can answer "superseded".
 * `country`, the destination region, rides with the job and the record for the metrics; `attached`
 * (the phone is an attachment) goes into the record's `needs`.
 */
export async function storeAndEnqueue(
  env: Env,
  projectId: string,
  phoneId: string,
  phoneNumber: string,
  pending: PendingCode,
  { replaced = null, country = null, attached = true }: Partial<StoreOptions> = {},
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
  const { plan } = pending
  if (country) stored.country = country
  stored.needs = { attached, sms: plan.channel === 'sms' || plan.fallback }
  const job: DeliveryJob = {
    v: 1,
    ...ids,
    project_id: projectId,
    locale: pending.locale,
    expires_at: pending.expiresAt,
    code,
    channel: plan.channel,
    ...(plan.channel === 'whatsapp' && plan.fallback ? { fallback: 'sms' as const } : {}),
    ...(plan.channel === 'sms' && plan.autofillDomain ? { autofill_domain: plan.autofillDomain } : {}),
    ...(country ? { country } : {}),
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

/** What storeAndEnqueue writes besides the code: see there. */
export interface StoreOptions {
  replaced: LiveCodeRow | null
  country: string | null
  attached: boolean
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
