import { fromBase64Url, keyedHash, keyedHashMatches, toBase64Url } from '../crypto'
import { rotatingSecret } from '../env'
import { canonicalIp } from '../ip'
import type { AttributesInput } from '../schemas'

/**
 * The send-time attributes that options.ip_match_required / user_agent_match_required compare
 * against. Nothing needs the clear values, so the KV record and the D1 gate row keep only keyed
 * hashes (HMAC-SHA-256 with the pepper, bound to the project): a leaked database or namespace shows
 * no end user's IP address or user agent.
 */
export interface AttributeHashes {
  ip_hash?: string
  ua_hash?: string
}

/**
 * What a record holds for the comparison: the hashes, or (records written before hashing existed,
 * still live for at most a code's lifetime) the clear values.
 */
export interface StoredAttributes {
  ip_hash?: string | null | undefined
  ua_hash?: string | null | undefined
  ip_address?: string | null | undefined
  user_agent?: string | null | undefined
}

const ipMessage = (projectId: string, ip: string) => `otp:attr:v1:ip:${projectId}:${canonicalIp(ip)}`
const uaMessage = (projectId: string, userAgent: string) => `otp:attr:v1:ua:${projectId}:${userAgent}`

/** Under the current pepper: what is stored from now on. */
function hashNow(env: Env, message: string): Promise<Uint8Array> {
  return keyedHash(rotatingSecret(env, 'OTP_PEPPER'), message)
}

/** The hashes to store for a send's attributes (absent or empty values are not stored). */
export async function hashAttributes(
  env: Env,
  projectId: string,
  attributes: AttributesInput | undefined,
): Promise<AttributeHashes> {
  const ip = attributes?.ip_address
  const ua = attributes?.user_agent
  const [ipHash, uaHash] = await Promise.all([
    ip ? hashNow(env, ipMessage(projectId, ip)) : null,
    ua ? hashNow(env, uaMessage(projectId, ua)) : null,
  ])
  const hashes: AttributeHashes = {}
  if (ipHash) hashes.ip_hash = toBase64Url(ipHash)
  if (uaHash) hashes.ua_hash = toBase64Url(uaHash)
  return hashes
}

/**
 * options.*_match_required: the value given now must be the one stored at send time. Fails closed
 * when either side is missing (nothing to match is not a match). Judged on its own, before and
 * whatever the code: a reply must not tell a right code from a wrong one when the attributes differ.
 */
export async function attributesMatch(
  env: Env,
  projectId: string,
  stored: StoredAttributes,
  input: {
    attributes?: AttributesInput | undefined
    options?: { ip_match_required: boolean; user_agent_match_required: boolean } | undefined
  },
): Promise<boolean> {
  const { options, attributes } = input
  const checks: Promise<boolean>[] = []
  if (options?.ip_match_required) {
    checks.push(matches(env, ipMessage, projectId, stored.ip_hash, stored.ip_address, attributes?.ip_address))
  }
  if (options?.user_agent_match_required) {
    checks.push(matches(env, uaMessage, projectId, stored.ua_hash, stored.user_agent, attributes?.user_agent))
  }
  return (await Promise.all(checks)).every(Boolean)
}

async function matches(
  env: Env,
  message: (projectId: string, value: string) => string,
  projectId: string,
  storedHash: string | null | undefined,
  storedClear: string | null | undefined,
  given: string | undefined,
): Promise<boolean> {
  if (!given) return false
  const expected = storedHash ?? (storedClear ? toBase64Url(await hashNow(env, message(projectId, storedClear))) : null)
  if (!expected) return false
  let expectedBytes: Uint8Array
  try {
    expectedBytes = fromBase64Url(expected)
  } catch {
    return false
  }
  // A hash stored before an OTP_PEPPER rotation still matches under the previous pepper.
  return keyedHashMatches(rotatingSecret(env, 'OTP_PEPPER'), message(projectId, given), expectedBytes)
}
