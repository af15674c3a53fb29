// The mixed workload of `npm run loadtest` (scripts/loadtest.mjs): what each request is, what it may
// answer, and what the run learns from the answers (which phones got codes, their users and ids).
// Deterministic for a seed, except for what depends on the server's answers at run time.

/** Every status each kind of request may answer; anything else fails the run. */
export const EXPECTED = {
  // 429: the per-number cooldown (--cooldown) refused a send right after another one to that number.
  login: [200, 429],
  send: [200, 429],
  // Wrong guesses carry ip_match_required against an IP the code was not sent with, so even a guess
  // that happens to be the right code cannot consume it (attribute_mismatch); a guess equal to a
  // replaced code is "superseded" (401).
  wrong_code: [401, 404],
  get_user: [200],
  bad_phone: [400],
  bad_json: [400],
  bad_auth: [401],
  bad_type: [415],
  health: [200],
}

// The share of each kind in the mix (out of 100).
/** @type {[string, number][]} */
const MIX = [
  ['login', 45],
  ['send', 10],
  ['wrong_code', 15],
  ['get_user', 10],
  ['bad_phone', 3],
  ['bad_json', 3],
  ['bad_auth', 2],
  ['bad_type', 2],
  ['health', 10],
]

/** A small seeded PRNG (mulberry32), so a run's mix and phones can be replayed with --seed. */
export function prng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

/** Valid US numbers +1 202 555 1000 … (libphonenumber accepts them; bench uses 0100-0999 separately). */
export const phoneNumber = (i) => `+1202555${String(1_000 + i).padStart(4, '0')}`

/** The kinds of `total` requests, shuffled by `random`. */
export function plan(total, random) {
  const kinds = []
  for (const [kind, share] of MIX) for (let i = 0; i < Math.round((total * share) / 100); i++) kinds.push(kind)
  while (kinds.length < total) kinds.push('health')
  kinds.length = total
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[kinds[i], kinds[j]] = [kinds[j], kinds[i]]
  }
  return kinds
}

/**
 * What the run has learnt from accepted sends: per phone number its phone_id, its user_id and how many
 * sends were accepted; every answer for a number must name the same user and phone.
 */
export class Ledger {
  constructor() {
    this.phones = new Map()
    this.inconsistent = []
  }

  accepted(number, body) {
    const known = this.phones.get(number)
    if (!known) {
      this.phones.set(number, { phoneId: body.phone_id, userId: body.user_id, sends: 1 })
      return
    }
    known.sends++
    if (known.phoneId !== body.phone_id || known.userId !== body.user_id) {
      this.inconsistent.push({ number, first: known, later: body })
    }
  }

  get acceptedSends() {
    let n = 0
    for (const p of this.phones.values()) n += p.sends
    return n
  }

  /** A phone that already has a user (for send, wrong guesses and reads), or null early in the run. */
  pick(random) {
    if (this.phones.size === 0) return null
    const numbers = [...this.phones.keys()]
    const number = numbers[Math.floor(random() * numbers.length)]
    return { number, ...this.phones.get(number) }
  }
}

/**
 * The HTTP request for one planned request of `kind`. Sends, wrong guesses and reads need a phone that
 * has a user already; until one exists they fall back to a login. Returns the request and its kind.
 */
export function buildRequest(kind, { random, ledger, phones, auth, project }) {
  const json = (path, body, headers = {}) => ({
    method: 'POST',
    path,
    headers: { authorization: auth, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
  const known = ledger.pick(random)
  const effective = known === null && ['send', 'wrong_code', 'get_user'].includes(kind) ? 'login' : kind
  const anyPhone = phoneNumber(Math.floor(random() * phones))
  switch (effective) {
    case 'login':
      return {
        kind: effective,
        number: anyPhone,
        ...json('/v1/otps/whatsapp/login_or_create', { phone_number: anyPhone, expiration_minutes: 10 }),
      }
    case 'send':
      return {
        kind: effective,
        number: known.number,
        ...json('/v1/otps/whatsapp/send', { phone_number: known.number, expiration_minutes: 10 }),
      }
    case 'wrong_code': {
      const code = String(Math.floor(random() * 1_000_000)).padStart(6, '0')
      const body = {
        method_id: known.phoneId,
        code,
        attributes: { ip_address: '198.51.100.7' },
        options: { ip_match_required: true },
      }
      return { kind: effective, ...json('/v1/otps/authenticate', body) }
    }
    case 'get_user':
      return { kind: effective, method: 'GET', path: `/v1/users/${known.userId}`, headers: { authorization: auth } }
    case 'bad_phone':
      return {
        kind: effective,
        ...json('/v1/otps/whatsapp/login_or_create', {
          phone_number: `\uFF0B1202555${String(1_000 + Math.floor(random() * 9_000))}`,
        }),
      }
    case 'bad_json':
      return { kind: effective, ...json('/v1/otps/whatsapp/login_or_create', {}), body: '{"phone_number": "+1202' }
    case 'bad_auth': {
      const wrongAuth = `Basic ${Buffer.from(`${project.id}:${project.secret}x`).toString('base64')}`
      return {
        kind: effective,
        ...json('/v1/otps/whatsapp/login_or_create', { phone_number: anyPhone }, { authorization: wrongAuth }),
      }
    }
    case 'bad_type':
      return {
        kind: effective,
        ...json('/v1/otps/whatsapp/login_or_create', { phone_number: anyPhone }, { 'content-type': 'text/plain' }),
      }
    default:
      return { kind: 'health', method: 'GET', path: '/health', headers: {} }
  }
}
