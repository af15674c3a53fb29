import { IsolateCache } from '../cache'
import { fromBase64Url, openRotating, sealCurrent, toBase64Url } from '../crypto'
import {
  activeKey,
  type KeyReseal,
  type KeyRow,
  publicKeys,
  replaceActiveKey,
  resealKeys,
  unsealedActiveKeysStatement,
} from '../db/signing-keys'
import { newId, type ProjectEnv } from '../ids'
import { logEvent } from '../log'
import { JWT_LIFETIME_MS } from './jwt'
import { type SessionSecret, sessionSecret } from './sealing'

/**
 * Per-project RS256 signing keys for session JWTs. The key pair is generated with Web Crypto inside
 * the Worker; the private half is stored only sealed (AES-256-GCM under the key HKDF derives from
 * SESSION_KEY_ENCRYPTION_KEY for this purpose, a sibling of the session seals in ./sealing.ts, bound to
 * its project and kid) and the public half as a JWK. Keys sealed before that, under the secret itself,
 * still open and are sealed anew under the derived key when next read, or by the hourly run.
 *
 * Rotation: a project has at most one active key (retired_at NULL, enforced by a partial unique
 * index). A key older than KEY_MAX_AGE_MS is retired when a signer next loads it, or at once by
 * `npm run session-keys:rotate`; the next signer then creates a fresh key. A retired key stays in the
 * JWKS, and is trusted by this server, for RETIRED_KEY_TRUST_MS: long enough for every JWT it signed
 * to expire, including JWTs from isolates that still had it cached.
 */

/** How long an isolate reuses a loaded key set before asking D1 again. */
export const KEY_CACHE_TTL_MS = 60_000
/** Retired keys stay trusted this long: JWT lifetime, the signer cache, and a margin for clock skew. */
export const RETIRED_KEY_TRUST_MS = JWT_LIFETIME_MS + KEY_CACHE_TTL_MS + 4 * 60_000
/** Keys are rotated automatically at this age (Stytch rotates about every six months). */
export const KEY_MAX_AGE_MS = 180 * 24 * 60 * 60_000

const ALGORITHM = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const
const KEY_GEN = { ...ALGORITHM, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }

/** A public key as published in the JWKS (the fields Stytch's JWKS carries, minus certificates). */
export interface PublicJwk {
  kty: 'RSA'
  use: 'sig'
  key_ops: ['verify']
  alg: 'RS256'
  kid: string
  n: string
  e: string
}

export interface SigningKey {
  kid: string
  privateKey: CryptoKey
}

const SIGNING_KEY_INFO = 'session-signing-key:v1'
const keyAad = (projectId: string, kid: string) => `${SIGNING_KEY_INFO}:${projectId}:${kid}`

interface TrustedKey {
  jwk: PublicJwk
  retiredAt: number | null
  key?: Promise<CryptoKey>
}

// The JWKS route is public, so any project id can reach these caches: they are bounded. Empty key
// sets (any id that has signed nothing, including ids of no project) are remembered apart from real
// ones, so requesting the JWKS of many made-up ids cannot push real projects' keys out.
const CACHE_MAX_PROJECTS = 1_000
const signers = new IsolateCache<SigningKey>(KEY_CACHE_TTL_MS, CACHE_MAX_PROJECTS)
const verifiers = new IsolateCache<TrustedKey[]>(KEY_CACHE_TTL_MS, CACHE_MAX_PROJECTS)
const emptyKeySets = new IsolateCache<true>(KEY_CACHE_TTL_MS, CACHE_MAX_PROJECTS)

/** Forgets cached keys (tests reset storage between files and rotate keys under a moved clock). */
export function clearSessionKeyCache(): void {
  signers.clear()
  verifiers.clear()
  emptyKeySets.clear()
}

/**
 * The project's current signing key: from the isolate cache, else D1; creates the first key, or
 * the successor of one past KEY_MAX_AGE_MS. Concurrent creators race safely: the insert is
 * conditional on the partial unique index and everybody then reads whichever key won.
 */
export async function signingKey(env: Env, projectId: string, projectEnv: ProjectEnv, at: number): Promise<SigningKey> {
  const hit = signers.get(projectId, at)
  if (hit) return hit
  let row = await activeKey(env.DB, projectId)
  if (!row || row.created_at + KEY_MAX_AGE_MS <= at) {
    row = await createKey(env, projectId, projectEnv, at, row?.kid)
  }
  const keys = await sessionSecret(env)
  let privateKey = await unsealPrivateKey(env.DB, keys, projectId, row)
  if (!privateKey) {
    // Sealed under another SESSION_KEY_ENCRYPTION_KEY (the secret was changed): the key is unusable
    // for signing, so it is retired like an old one and replaced.
    logEvent('error', 'session_key_unreadable', { project_id: projectId, kid: row.kid })
    row = await createKey(env, projectId, projectEnv, at, row.kid)
    privateKey = await unsealPrivateKey(env.DB, keys, projectId, row)
    if (!privateKey) throw new Error('a freshly created session signing key cannot be unsealed')
  }
  const key = { kid: row.kid, privateKey }
  signers.set(projectId, key, at)
  return key
}

async function createKey(env: Env, projectId: string, projectEnv: ProjectEnv, at: number, retire?: string) {
  const pair = await crypto.subtle.generateKey(KEY_GEN, true, ['sign', 'verify'])
  if (!('privateKey' in pair)) throw new Error('RSA key generation returned a single key')
  const kid = newId('signingKey', projectEnv)
  const [pkcs8, jwk] = await Promise.all([
    crypto.subtle.exportKey('pkcs8', pair.privateKey),
    crypto.subtle.exportKey('jwk', pair.publicKey),
  ])
  if (!(pkcs8 instanceof ArrayBuffer) || jwk instanceof ArrayBuffer || !jwk.n || !jwk.e) {
    throw new Error('RSA key export returned an unexpected shape')
  }
  const publicJwk: PublicJwk = {
    kty: 'RSA',
    use: 'sig',
    key_ops: ['verify'],
    alg: 'RS256',
    kid,
    n: jwk.n,
    e: jwk.e,
  }
  const keys = await sessionSecret(env)
  const sealed = await sealCurrent(
    keys.secret,
    toBase64Url(new Uint8Array(pkcs8)),
    keyAad(projectId, kid),
    SIGNING_KEY_INFO,
  )
  const winner = await replaceActiveKey(
    env.DB,
    projectId,
    { kid, publicJwk: JSON.stringify(publicJwk), iv: sealed.iv, ct: sealed.ct, sealedWith: keys.current },
    at,
    retire,
  )
  if (!winner) throw new Error('no active session signing key after creating one')
  verifiers.delete(projectId)
  emptyKeySets.delete(projectId)
  return winner
}

/**
 * The private key's PKCS#8 (base64url), or null when it opens under neither the current secret nor,
 * during a rotation, the previous one: under the key derived for signing keys, or, for keys sealed
 * before keys were derived, under the secret itself. `reseal` is set when the key is not sealed under
 * the current derived key: stored (resealKeys), it keeps the key usable once the previous secret is
 * removed.
 */
async function openPrivateKey(
  keys: SessionSecret,
  projectId: string,
  row: KeyRow,
): Promise<{ pkcs8: string; reseal: KeyReseal | null } | null> {
  const aad = keyAad(projectId, row.kid)
  const sealed = { iv: row.private_key_iv, ct: row.private_key_ct }
  let opened: { plaintext: string; previous: boolean }
  let derived = true
  try {
    opened = await openRotating(keys.secret, sealed, aad, SIGNING_KEY_INFO)
  } catch {
    try {
      opened = await openRotating(keys.secret, sealed, aad)
      derived = false
    } catch {
      return null
    }
  }
  if (!opened.previous && derived && row.sealed_with === keys.current) return { pkcs8: opened.plaintext, reseal: null }
  const resealed = await sealCurrent(keys.secret, opened.plaintext, aad, SIGNING_KEY_INFO)
  const reseal = { projectId, kid: row.kid, ...resealed, sealedWith: keys.current, previousCt: row.private_key_ct }
  return { pkcs8: opened.plaintext, reseal }
}

/** The signing key, ready to sign (sealed anew first if need be), or null when it cannot be opened. */
async function unsealPrivateKey(
  db: D1Database,
  keys: SessionSecret,
  projectId: string,
  row: KeyRow,
): Promise<CryptoKey | null> {
  const opened = await openPrivateKey(keys, projectId, row)
  if (!opened) return null
  if (opened.reseal) {
    await resealKeys(db, [opened.reseal])
    logEvent('info', 'session_key_resealed', { project_id: projectId, kid: row.kid })
  }
  return crypto.subtle.importKey('pkcs8', fromBase64Url(opened.pkcs8), ALGORITHM, false, ['sign'])
}

/**
 * For the hourly run (src/retention.ts): seals anew up to `limit` active keys still sealed under the
 * previous secret or before keys were derived, in one statement, so that a project that signs nothing
 * during a rotation keeps its key. Returns how many it looked at; a key that opens under no secret is
 * left to signingKey, which replaces it.
 */
export async function resealSigningKeys(env: Env, limit: number): Promise<number> {
  const keys = await sessionSecret(env)
  const { results } = await unsealedActiveKeysStatement(env.DB, keys.previous, limit).all<
    KeyRow & { project_id: string }
  >()
  const opened = await Promise.all(results.map((row) => openPrivateKey(keys, row.project_id, row)))
  await resealKeys(
    env.DB,
    opened.flatMap((o) => (o?.reseal ? [o.reseal] : [])),
  )
  return results.length
}

/**
 * The project's trusted public keys, active key first: the active key and keys retired less than
 * RETIRED_KEY_TRUST_MS ago. This is both what the JWKS publishes and what this server verifies JWTs
 * against. A JWKS request never creates a key: a project that has signed nothing has an empty set.
 */
export async function trustedKeys(env: Env, projectId: string, at: number): Promise<PublicJwk[]> {
  return (await loadTrusted(env, projectId, at, false)).map((k) => k.jwk)
}

/**
 * The public key with `kid` if the project trusts it. An unknown kid reloads the set once (another
 * isolate may have created the key since this one cached the set).
 */
export async function verificationKey(env: Env, projectId: string, kid: string, at: number): Promise<CryptoKey | null> {
  let found = (await loadTrusted(env, projectId, at, false)).find((k) => k.jwk.kid === kid)
  if (!found) found = (await loadTrusted(env, projectId, at, true)).find((k) => k.jwk.kid === kid)
  if (!found) return null
  const { kty, n, e, alg } = found.jwk
  found.key ??= crypto.subtle.importKey('jwk', { kty, n, e, alg, ext: true }, ALGORITHM, false, ['verify'])
  return found.key
}

async function loadTrusted(env: Env, projectId: string, at: number, reload: boolean): Promise<TrustedKey[]> {
  const cachedEmpty: TrustedKey[] | undefined = emptyKeySets.get(projectId, at) ? [] : undefined
  let keys = reload ? undefined : (verifiers.get(projectId, at) ?? cachedEmpty)
  if (!keys) {
    const results = await publicKeys(env.DB, projectId, at - RETIRED_KEY_TRUST_MS)
    // Keys already imported from an older read of the set are kept.
    const imported = new Map((verifiers.peek(projectId) ?? []).map((k) => [k.jwk.kid, k.key]))
    keys = results.map((r): TrustedKey => {
      const key = imported.get(r.kid)
      const trusted: TrustedKey = { jwk: JSON.parse(r.public_jwk) as PublicJwk, retiredAt: r.retired_at }
      if (key) trusted.key = key
      return trusted
    })
    if (keys.length > 0) {
      emptyKeySets.delete(projectId)
      verifiers.set(projectId, keys, at)
    } else {
      verifiers.delete(projectId)
      emptyKeySets.set(projectId, true, at)
    }
  }
  // A cached set may hold a key whose trust window closed since it was read.
  return keys.filter((k) => k.retiredAt === null || k.retiredAt > at - RETIRED_KEY_TRUST_MS)
}
