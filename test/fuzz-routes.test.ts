import { env } from 'cloudflare:workers'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { credentials, hugeString, phoneLike, printable, unicodeDigit } from './fuzz-arbitraries'
import { exchange, expectNothingChanged, expectWellFormed, type FuzzRequest } from './fuzz-probe'
import { FUZZ_RUNS, fuzzPool, type Pool } from './fuzz-setup'
import { TEST_PROJECT } from './helpers'
import { quietConsole } from './log-capture'
import { expectNoSecrets } from './secrets'
import { signTwilio, TWILIO_CALLBACK } from './sms-helpers'
import { signWebhook, statusPayload } from './whatsapp-helpers'

/**
 * Property-based tests of the routes besides the OTP and sessions ones: the Users API (ids in the
 * path), Meta's webhook (signature, payload, handshake), Twilio's status callback (signature, form),
 * the dev outbox (query), and any method on
 * any path (/health and /openapi.json included). Same properties as test/fuzz-otps.test.ts: never a
 * 5xx, always Stytch-shaped JSON (the webhook handshake's plain echo and the two documents, the
 * OpenAPI description and the dev outbox, are the exceptions), and a rejection changes nothing.
 */

let pool: Pool

beforeAll(async () => {
  quietConsole()
  pool = await fuzzPool(env)
  // Give the pool's deliveries Meta message ids, so generated status webhooks can match rows.
  await env.DB.batch(
    pool.phoneIds.map((id, i) =>
      env.DB.prepare(`UPDATE deliveries SET status = 'sent', wamid = ?2 WHERE phone_id = ?1`).bind(
        id,
        `wamid.pool-${i}`,
      ),
    ),
  )
})

/** An id as it can appear in a path: real, well-formed but unknown, of another kind, or garbage. */
function pathId(real: () => string[], prefix: string): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.constantFrom(...real()), weight: 3 },
    { arbitrary: fc.uuid().map((u) => `${prefix}-test-${u}`), weight: 2 },
    fc.uuid().map((u) => `${prefix}-live-${u}`),
    fc.constantFrom(...pool.phoneIds, ...pool.userIds),
    printable(60),
    fc.string({ unit: 'grapheme', maxLength: 30 }),
    fc.array(unicodeDigit, { maxLength: 12 }).map((ds) => ds.join('')),
    fc.constantFrom('..', '.', '%00', '%2F', 'null', 'undefined', ' ', '\u202E'),
    hugeString.map((s) => s.slice(0, 4_000)),
  )
}

const encodePath = (id: string) => encodeURIComponent(id).replace(/%25(?=[0-9A-F]{2})/g, '%')

// Dot segments ('.', '..') are resolved by URL parsing, so such a path may leave the Users API.
const reachesUsersApi = (path: string) => new URL(path, 'http://localhost').pathname.startsWith('/v1/users/')

const withCredentials = <T>(inner: fc.Arbitrary<T>) => fc.tuple(credentials(TEST_PROJECT), inner)

describe('fuzz: the Users API', () => {
  it('GET and DELETE /v1/users/{user_id}: Stytch JSON, never 5xx; a rejection changes nothing', async () => {
    const request = withCredentials(
      fc.tuple(
        fc.constantFrom('GET', 'GET', 'GET', 'DELETE'),
        pathId(() => pool.userIds, 'user'),
      ),
    )
    await fc.assert(
      fc.asyncProperty(request, async ([creds, [method, id]]) => {
        const headers: Record<string, string> = creds.header === undefined ? {} : { authorization: creds.header }
        const path = `/v1/users/${encodePath(id)}`
        const o = await exchange({ method, path, headers })
        const errorType = expectWellFormed(o)
        if (!creds.valid && reachesUsersApi(path)) expect(errorType).toBe('unauthorized_credentials')
        if (errorType !== null) return expectNothingChanged(o)
        expect(creds.valid && pool.userIds.includes(id)).toBe(true)
        expect(o.json?.user_id).toBe(id)
        if (method === 'GET') expectNothingChanged(o)
        else expect(o.after.tables.users?.rows).toBe((o.before.tables.users?.rows ?? 0) - 1)
      }),
      { numRuns: FUZZ_RUNS.users },
    )
  })

  it('DELETE /v1/users/phone_numbers/{phone_id}: Stytch JSON, never 5xx; a rejection changes nothing', async () => {
    const request = withCredentials(pathId(() => pool.phoneIds, 'phone-number'))
    await fc.assert(
      fc.asyncProperty(request, async ([creds, id]) => {
        const headers: Record<string, string> = creds.header === undefined ? {} : { authorization: creds.header }
        const path = `/v1/users/phone_numbers/${encodePath(id)}`
        const o = await exchange({ method: 'DELETE', path, headers })
        const errorType = expectWellFormed(o)
        if (!creds.valid && reachesUsersApi(path)) expect(errorType).toBe('unauthorized_credentials')
        if (errorType !== null) return expectNothingChanged(o)
        expect(creds.valid && pool.phoneIds.includes(id)).toBe(true)
        expect(o.kvDeletes).toEqual([`otp:${id}`])
        expect(o.after.tables.phones?.rows).toBe((o.before.tables.phones?.rows ?? 0) - 1)
      }),
      { numRuns: FUZZ_RUNS.phones },
    )
  })
})

/** Status webhook bodies: Meta's shape around real and unknown ids, any JSON, and non-JSON. */
const webhookBody = fc.oneof(
  {
    arbitrary: fc
      .array(
        fc.record({
          id: fc.oneof(
            fc.nat({ max: 7 }).map((i) => `wamid.pool-${i}`),
            printable(20),
          ),
          status: fc.constantFrom('sent', 'delivered', 'read', 'failed', 'deleted', ''),
          errors: fc.option(fc.array(fc.record({ code: fc.integer() }), { maxLength: 2 }), { nil: undefined }),
        }),
        { maxLength: 4 },
      )
      .map((statuses) => JSON.stringify(statusPayload(statuses))),
    weight: 4,
  },
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 60 }),
  fc.constant(`{"entry":[${'{"changes":[]},'.repeat(80_000)}{}]}`),
)

describe('fuzz: the WhatsApp webhook', () => {
  it('POST: only a valid signature gets past 401; never 5xx; a rejection changes nothing', async () => {
    const signature = fc.oneof(
      { arbitrary: fc.constant('valid'), weight: 4 },
      fc.constantFrom('missing', 'wrong-secret', 'upper-case'),
      fc
        .string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 })
        .map((h) => `sha256=${h}`),
      printable(80),
    )
    await fc.assert(
      fc.asyncProperty(
        webhookBody,
        signature,
        fc.option(printable(30), { nil: undefined }),
        async (body, kind, type) => {
          const headers: Record<string, string> = type === undefined ? {} : { 'content-type': type }
          if (kind === 'valid') headers['x-hub-signature-256'] = await signWebhook(body)
          else if (kind === 'upper-case')
            headers['x-hub-signature-256'] = (await signWebhook(body)).toUpperCase().replace('SHA256=', 'sha256=')
          else if (kind === 'wrong-secret')
            headers['x-hub-signature-256'] = await signWebhook(body, 'another-app-secret')
          else if (kind !== 'missing') headers['x-hub-signature-256'] = kind
          const o = await exchange({ method: 'POST', path: '/v1/webhooks/whatsapp', headers, body })
          const errorType = expectWellFormed(o)
          const signed = kind === 'valid' || kind === 'upper-case'
          if (body.length > 1024 * 1024) expect(errorType).toBe('request_too_large')
          else if (!signed) expect(errorType).toBe('invalid_webhook_signature')
          if (errorType !== null) return expectNothingChanged(o)
          // Accepted: only delivery statuses may move (never a row added or removed).
          expectNothingChanged(o, ['deliveries'])
          expect(o.after.tables.deliveries?.rows).toBe(o.before.tables.deliveries?.rows)
        },
      ),
      { numRuns: FUZZ_RUNS.webhookPost },
    )
  })

  it('GET: echoes the challenge only for the right token, otherwise a Stytch 403; never changes anything', async () => {
    const query = fc.record(
      {
        'hub.mode': fc.oneof(fc.constant('subscribe'), printable(12)),
        'hub.verify_token': fc.oneof(
          fc.constant(env.WHATSAPP_VERIFY_TOKEN),
          printable(30),
          hugeString.map((s) => s.slice(0, 3_000)),
        ),
        'hub.challenge': fc.oneof(fc.nat().map(String), printable(40), fc.string({ unit: 'binary', maxLength: 20 })),
      },
      { requiredKeys: [] },
    )
    await fc.assert(
      fc.asyncProperty(query, async (q) => {
        const o = await exchange({
          method: 'GET',
          path: `/v1/webhooks/whatsapp?${new URLSearchParams(q)}`,
          headers: {},
        })
        const accepted =
          q['hub.mode'] === 'subscribe' &&
          q['hub.verify_token'] === env.WHATSAPP_VERIFY_TOKEN &&
          /^[0-9A-Za-z_-]{1,128}$/.test(q['hub.challenge'] ?? '')
        expectNothingChanged(o)
        if (!accepted) {
          expect(expectWellFormed(o)).toBe('forbidden')
          return
        }
        expect(o.status).toBe(200)
        expect(o.headers.get('content-type')).toMatch(/^text\/plain/)
        expect(o.text).toBe(q['hub.challenge'])
        expectNoSecrets(o.text, 'the handshake echo')
      }),
      { numRuns: FUZZ_RUNS.webhookGet },
    )
  })
})

describe('fuzz: the Twilio status callback', () => {
  it('POST: only a valid signature gets past 401; never 5xx; a rejection changes nothing', async () => {
    const sid = fc.oneof(
      fc.integer({ min: 0, max: 15 }).map((i) => `SM${i.toString(16).repeat(32)}`),
      printable(40),
    )
    const form = fc.dictionary(
      fc.oneof(fc.constantFrom('MessageSid', 'MessageStatus', 'ErrorCode', 'SmsSid', 'AccountSid'), printable(12)),
      fc.oneof(
        sid,
        fc.constantFrom('delivered', 'undelivered', 'failed', 'sent', 'canceled', 'read'),
        fc.nat().map(String),
        printable(30),
      ),
      { maxKeys: 8 },
    )
    const body = fc.oneof(
      { arbitrary: form.map((f) => new URLSearchParams(f).toString()), weight: 4 },
      fc.string({ maxLength: 200 }),
      fc.constant(`MessageSid=${'x'.repeat(1_100_000)}`),
    )
    const signature = fc.constantFrom('valid', 'missing', 'wrong-token', 'wrong-url', 'garbage')
    await fc.assert(
      fc.asyncProperty(body, signature, async (raw, kind) => {
        const params = new URLSearchParams(raw)
        const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' }
        if (kind === 'valid') headers['x-twilio-signature'] = await signTwilio(TWILIO_CALLBACK, params)
        if (kind === 'wrong-token') {
          headers['x-twilio-signature'] = await signTwilio(TWILIO_CALLBACK, params, '0'.repeat(32))
        }
        if (kind === 'wrong-url') headers['x-twilio-signature'] = await signTwilio(`${TWILIO_CALLBACK}?x=1`, params)
        if (kind === 'garbage') headers['x-twilio-signature'] = 'not a signature'
        const o = await exchange({ method: 'POST', path: '/v1/webhooks/twilio', headers, body: raw })
        const errorType = expectWellFormed(o)
        if (raw.length > 1024 * 1024) expect(errorType).toBe('request_too_large')
        else if (kind !== 'valid') expect(errorType).toBe('invalid_webhook_signature')
        else expect(errorType).toBeNull()
        if (errorType !== null) return expectNothingChanged(o)
        // Accepted: only delivery statuses may move (never a row added or removed).
        expectNothingChanged(o, ['deliveries'])
        expect(o.after.tables.deliveries?.rows).toBe(o.before.tables.deliveries?.rows)
      }),
      { numRuns: FUZZ_RUNS.webhookPost },
    )
  })
})

describe('fuzz: GET /dev/whatsapp/outbox', () => {
  it('answers any query and credentials with the messages, a Stytch 400 or 401, never 5xx, and changes nothing', async () => {
    const query = fc.record(
      {
        phone_number: fc.oneof(phoneLike, fc.constantFrom(...pool.phoneNumbers), fc.constant('')),
        limit: fc.oneof(
          fc.integer({ min: -5, max: 200 }).map(String),
          printable(8),
          fc.constantFrom('1e2', '0x10', ''),
        ),
      },
      { requiredKeys: [] },
    )
    await fc.assert(
      fc.asyncProperty(withCredentials(query), fc.boolean(), async ([creds, q], encodePlus) => {
        let search = new URLSearchParams(q).toString()
        if (!encodePlus) search = search.replaceAll('%2B', '+')
        const headers: Record<string, string> = creds.header === undefined ? {} : { authorization: creds.header }
        const o = await exchange({ method: 'GET', path: `/dev/whatsapp/outbox?${search}`, headers })
        const errorType = expectWellFormed(o, { plainSuccess: true })
        expectNothingChanged(o)
        if (!creds.valid) {
          expect(errorType).toBe('unauthorized_credentials')
          return
        }
        if (errorType !== null) {
          expect(['bad_request', 'invalid_phone_number']).toContain(errorType)
          return
        }
        expect(Object.keys(o.json ?? {})).toEqual(['messages'])
        expect(Array.isArray(o.json?.messages)).toBe(true)
      }),
      { numRuns: FUZZ_RUNS.outbox },
    )
  })
})

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']
const PREFIXES = [
  '/',
  '/health',
  '/v1',
  '/v1/otps',
  '/v1/otps/whatsapp',
  '/v1/otps/sms',
  '/v1/users',
  '/v1/webhooks',
  '/dev',
  '/dev/whatsapp',
  '/dev/outbox',
  '/v1/sessions',
  '/v1/sessions/jwks',
  '/openapi.json',
]
// 2xx replies that are documents rather than Stytch API objects (no request_id / status_code).
const PLAIN_SUCCESS = new Set(['/openapi.json', '/dev/whatsapp/outbox', '/dev/outbox'])

describe('fuzz: any method on any path', () => {
  it('is Stytch JSON, never 5xx; /health answers GET; a rejection changes nothing', async () => {
    const path = fc
      .tuple(
        fc.constantFrom(...PREFIXES),
        fc.array(fc.oneof(printable(12), fc.string({ maxLength: 8 })), { maxLength: 3 }),
      )
      .map(([prefix, segments]) => `${prefix}${segments.map((s) => `/${encodeURIComponent(s)}`).join('')}`)
    const request = fc.record({
      method: fc.constantFrom(...METHODS),
      path,
      creds: credentials(TEST_PROJECT),
      body: fc.option(
        fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
        { nil: undefined },
      ),
    })
    await fc.assert(
      fc.asyncProperty(request, async ({ method, path: p, creds, body }) => {
        const headers: Record<string, string> = { 'content-type': 'application/json' }
        if (creds.header !== undefined) headers.authorization = creds.header
        const req: FuzzRequest = {
          method,
          path: p,
          headers,
          ...(body !== undefined && method !== 'GET' ? { body } : {}),
        }
        const o = await exchange(req)
        const errorType = expectWellFormed(o, { plainSuccess: PLAIN_SUCCESS.has(p) })
        if (p === '/health' && method === 'GET') expect(o.json?.status).toBe('ok')
        if (p === '/openapi.json' && method === 'GET') expect(o.json?.openapi).toMatch(/^3\./)
        if (errorType === 'method_not_allowed') expect(o.headers.get('allow')).toMatch(/^[A-Z]+(, [A-Z]+)*$/)
        if (errorType !== null) expectNothingChanged(o)
      }),
      { numRuns: FUZZ_RUNS.anyRoute },
    )
  })
})
