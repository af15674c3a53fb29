/**
 * Web Crypto primitives used across the service. Pure functions: keys come in as strings from
 * Worker secrets; nothing here touches bindings.
 */

const encoder = new TextEncoder()

const CODE_RANGE = 1_000_000
// Largest multiple of 10^6 below 2^32: draws at or above it are rejected so every code is equally likely.
const CODE_DRAW_LIMIT = 2 ** 32 - (2 ** 32 % CODE_RANGE)

/** A uniform 6-digit code by rejection sampling over crypto.getRandomValues (no modulo bias). */
export function generateCode(): string {
  const draw = new Uint32Array(1)
  for (;;) {
    crypto.getRandomValues(draw)
    const value = draw[0] ?? CODE_DRAW_LIMIT
    if (value < CODE_DRAW_LIMIT) return String(value % CODE_RANGE).padStart(6, '0')
  }
}

/** `bytes` random bytes, base64url without padding (tokens, secrets). */
export function randomToken(bytes = 32): string {
  const buf = new Uint8Array(bytes)
  crypto.getRandomValues(buf)
  return toBase64Url(buf)
}

export function toBase64Url(bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) s += String.fromCharCode(b)
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/** Standard base64 with padding (what Twilio's signatures use), as bytes; null when malformed. */
export function fromBase64(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return null
  return fromBase64Url(text)
}

export function fromBase64Url(text: string): Uint8Array {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/')
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4))
  const out = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
  return out
}

export function toHex(bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) s += b.toString(16).padStart(2, '0')
  return s
}

export function fromHex(hex: string): Uint8Array | null {
  if (hex.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(hex)) return null
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16)
  return out
}

export async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(text)))
}

/**
 * Constant-time equality of two byte strings. Lengths are compared first (length is not secret for
 * our fixed-size digests); contents go through crypto.subtle.timingSafeEqual.
 */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  return crypto.subtle.timingSafeEqual(a, b)
}

const hmacKeys = new Map<string, Promise<CryptoKey>>()

function hmacKey(secret: string, hash: 'SHA-256' | 'SHA-1'): Promise<CryptoKey> {
  const id = `${hash}:${secret}`
  let key = hmacKeys.get(id)
  if (!key) {
    key = crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash }, false, ['sign'])
    hmacKeys.set(id, key)
  }
  return key
}

async function hmac(hash: 'SHA-256' | 'SHA-1', secret: string, message: string | Uint8Array): Promise<Uint8Array> {
  const data = typeof message === 'string' ? encoder.encode(message) : message
  return new Uint8Array(await crypto.subtle.sign('HMAC', await hmacKey(secret, hash), data))
}

/** HMAC-SHA-256(secret, message) as raw bytes. Imported keys are cached per isolate. */
export function hmacSha256(secret: string, message: string | Uint8Array): Promise<Uint8Array> {
  return hmac('SHA-256', secret, message)
}

/** HMAC-SHA-1(secret, message): only for checking signatures a provider makes with it (Twilio's). */
export function hmacSha1(secret: string, message: string | Uint8Array): Promise<Uint8Array> {
  return hmac('SHA-1', secret, message)
}

const aesKeys = new Map<string, Promise<CryptoKey>>()

function aesKey(secretBase64: string): Promise<CryptoKey> {
  let key = aesKeys.get(secretBase64)
  if (!key) {
    const raw = fromBase64Url(secretBase64.trim())
    if (raw.byteLength !== 32) {
      return Promise.reject(new Error('an AES-256-GCM key must be 32 bytes, base64-encoded'))
    }
    key = crypto.subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt'])
    aesKeys.set(secretBase64, key)
  }
  return key
}

const derivedKeys = new Map<string, Promise<CryptoKey>>()
const hkdfKeys = new Map<string, Promise<CryptoKey>>()

/** A 32-byte base64 secret as HKDF input key material (cached per isolate). */
function hkdfMaterial(secretBase64: string): Promise<CryptoKey> {
  let material = hkdfKeys.get(secretBase64)
  if (!material) {
    const raw = fromBase64Url(secretBase64.trim())
    if (raw.byteLength !== 32) return Promise.reject(new Error('the key secret must be 32 bytes, base64-encoded'))
    material = crypto.subtle.importKey('raw', raw, 'HKDF', false, ['deriveKey', 'deriveBits'])
    hkdfKeys.set(secretBase64, material)
  }
  return material
}

const hkdf = (info: string) =>
  ({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: encoder.encode(info) }) as const

/**
 * An AES-256-GCM key for one purpose, derived with HKDF-SHA-256 from a 32-byte base64 secret (`info`
 * names the purpose), so one secret can seal several kinds of data without two of them ever sharing
 * a key. Derived keys are cached per isolate.
 */
export function derivedAesKey(secretBase64: string, info: string): Promise<CryptoKey> {
  const cacheKey = `${info}\u0000${secretBase64}`
  let key = derivedKeys.get(cacheKey)
  if (!key) {
    key = hkdfMaterial(secretBase64).then((material) =>
      crypto.subtle.deriveKey(hkdf(info), material, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']),
    )
    derivedKeys.set(cacheKey, key)
  }
  return key
}

const fingerprints = new Map<string, Promise<string>>()

/**
 * A short public name for a 32-byte base64 secret: 72 bits HKDF derives from it under `info`, as
 * base64url. It tells which secret sealed a stored value (so the ones sealed under an older secret
 * can be found) and reveals nothing of the secret. Cached per isolate.
 */
export function secretFingerprint(secretBase64: string, info: string): Promise<string> {
  const cacheKey = `${info}\u0000${secretBase64}`
  let fingerprint = fingerprints.get(cacheKey)
  if (!fingerprint) {
    fingerprint = hkdfMaterial(secretBase64)
      .then((material) => crypto.subtle.deriveBits(hkdf(info), material, 72))
      .then((bits) => toBase64Url(new Uint8Array(bits)))
    fingerprints.set(cacheKey, fingerprint)
  }
  return fingerprint
}

export interface Sealed {
  iv: string
  ct: string
}

/**
 * AES-256-GCM encryption; `aad` binds the ciphertext to its context (it must match on open). The key
 * is a base64 secret used as is, or a derived key (derivedAesKey).
 */
export async function seal(key: string | CryptoKey, plaintext: string, aad: string): Promise<Sealed> {
  const iv = new Uint8Array(12)
  crypto.getRandomValues(iv)
  const ct = await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv, additionalData: encoder.encode(aad) },
    typeof key === 'string' ? await aesKey(key) : key,
    encoder.encode(plaintext),
  )
  return { iv: toBase64Url(iv), ct: toBase64Url(new Uint8Array(ct)) }
}

export async function open(key: string | CryptoKey, sealed: Sealed, aad: string): Promise<string> {
  const pt = await crypto.subtle.decrypt(
    { name: 'AES-GCM', iv: fromBase64Url(sealed.iv), additionalData: encoder.encode(aad) },
    typeof key === 'string' ? await aesKey(key) : key,
    fromBase64Url(sealed.ct),
  )
  return new TextDecoder().decode(pt)
}

/**
 * A secret that can be rotated without an outage: everything new is written with `current`, and what
 * was written before the rotation is still read with `previous` until it has aged out. Rotation is:
 * previous = current, current = a new value, wait one lifetime of what the secret protects, remove
 * previous. Every use of a rotatable secret goes through the helpers below, so the order (current
 * first) and the fallback live in one place.
 */
export interface RotatingSecret {
  current: string
  previous: string | null
}

/** The secrets to try, current first. */
const candidates = (secret: RotatingSecret) => (secret.previous ? [secret.current, secret.previous] : [secret.current])

/** HMAC-SHA-256 under the current secret: what is stored or sent from now on. */
export function keyedHash(secret: RotatingSecret, message: string | Uint8Array): Promise<Uint8Array> {
  return hmacSha256(secret.current, message)
}

/**
 * Whether `expected` is the keyed hash of `message` under the current or the previous secret
 * (constant-time comparison for each; a hash stored before a rotation still matches).
 */
export async function keyedHashMatches(
  secret: RotatingSecret,
  message: string | Uint8Array,
  expected: Uint8Array,
): Promise<boolean> {
  for (const key of candidates(secret)) {
    if (bytesEqual(await hmacSha256(key, message), expected)) return true
  }
  return false
}

/** The AES key for `secret`: the secret itself, or the key HKDF derives from it for `info`. */
const aesKeyFor = (secret: string, info: string | undefined) =>
  info === undefined ? secret : derivedAesKey(secret, info)

/** Seals under the current key (see seal), or under the key derived from it for `info` when given. */
export async function sealCurrent(key: RotatingSecret, plaintext: string, aad: string, info?: string): Promise<Sealed> {
  return seal(await aesKeyFor(key.current, info), plaintext, aad)
}

/**
 * Opens a value sealed under the current or the previous key (or, with `info`, the key derived from
 * either for that purpose). `previous` is true when only the previous key opened it: the caller may
 * re-seal it under the current one. Throws when neither does.
 */
export async function openRotating(
  key: RotatingSecret,
  sealed: Sealed,
  aad: string,
  info?: string,
): Promise<{ plaintext: string; previous: boolean }> {
  let failure: unknown
  for (const candidate of candidates(key)) {
    try {
      return {
        plaintext: await open(await aesKeyFor(candidate, info), sealed, aad),
        previous: candidate !== key.current,
      }
    } catch (err) {
      failure = err
    }
  }
  throw failure
}
