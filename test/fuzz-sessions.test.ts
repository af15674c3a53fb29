import { env } from 'cloudflare:workers'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { bodyObject, credentials, field, hugeString, printable, rawBody } from './fuzz-arbitraries'
import { changedTables, exchange, expectNothingChanged, expectWellFormed } from './fuzz-probe'
import { checkJsonRoute, FUZZ_RUNS, fuzzPool, jsonRequest, type Pool } from './fuzz-setup'
import { TEST_PROJECT } from './helpers'
import { quietConsole } from './log-capture'
import { authenticate } from './otp-helpers'

/**
 * Property-based tests of the sessions API (/v1/sessions/*), as test/fuzz-otps.test.ts does for the
 * OTP routes: never a 5xx, always Stytch-shaped JSON, a rejection changes nothing, and an accepted
 * request changes only the sessions it names.
 */

interface SessionPool extends Pool {
  tokens: string[]
  jwts: string[]
  sessionIds: string[]
}

let pool: SessionPool

beforeAll(async () => {
  quietConsole()
  const base = await fuzzPool(env)
  pool = { ...base, tokens: [], jwts: [], sessionIds: [] }
  for (const [i, phoneId] of base.phoneIds.entries()) {
    const res = await authenticate(TEST_PROJECT, {
      method_id: phoneId,
      code: base.codes[i],
      session_duration_minutes: 60,
    })
    expect(res.status).toBe(200)
    pool.tokens.push(String(res.body.session_token))
    pool.jwts.push(String(res.body.session_jwt))
    pool.sessionIds.push(String((res.body.session as { session_id: string }).session_id))
  }
})

/** Session tokens: live ones, one character changed, random base64url, and anything else. */
const token = () =>
  fc.oneof(
    { arbitrary: fc.constantFrom(...pool.tokens), weight: 3 },
    fc.constantFrom(...pool.tokens).map((t) => `${t.slice(0, -1)}${t.endsWith('A') ? 'B' : 'A'}`),
    fc.base64String({ minLength: 4, maxLength: 60 }).map((b) => b.replace(/[+/=]/g, '_')),
    printable(50),
    hugeString,
  )

/** Session JWTs: live ones, with a changed payload or signature, from nowhere, and not JWTs at all. */
const jwt = () =>
  fc.oneof(
    { arbitrary: fc.constantFrom(...pool.jwts), weight: 3 },
    fc.constantFrom(...pool.jwts).map((j) => {
      const [head = '', payload = '', signature = ''] = j.split('.')
      return `${head}.${payload}.${signature.slice(0, -2)}AA`
    }),
    fc.constantFrom(...pool.jwts).map((j) => {
      const [head = '', , signature = ''] = j.split('.')
      const forged = btoa(JSON.stringify({ sub: pool.userIds[0], exp: 9_999_999_999 })).replace(/=+$/, '')
      return `${head}.${forged}.${signature}`
    }),
    fc.constant('eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.'),
    fc.constant('a.b.c'),
    printable(60),
  )

const sessionId = () =>
  fc.oneof(
    { arbitrary: fc.constantFrom(...pool.sessionIds), weight: 2 },
    fc.uuid().map((u) => `session-test-${u}`),
    printable(40),
  )

const claims = fc.dictionary(
  fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('sub', 'exp', 'iss', 'https://stytch.com/session')),
  fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    hugeString.map((s) => s.slice(0, 5_000)),
  ),
  { maxKeys: 4 },
)

// What an accepted sessions call may write: the session row (access time, expiry, claims), and for a
// revocation its factors going with it.
const SESSION_TABLES = ['sessions', 'session_factors']

describe('fuzz: POST /v1/sessions/authenticate and /revoke', () => {
  it('authenticate: Stytch JSON, never 5xx; a rejection changes nothing; a success touches only sessions', async () => {
    const body = bodyObject(
      {
        session_token: field(token()),
        session_jwt: field(jwt()),
        session_duration_minutes: field(fc.integer({ min: -10, max: 600_000 })),
        session_custom_claims: field(claims),
        authorization_check: field(fc.constantFrom(null, {}, { organization_id: 'x' })),
      },
      [],
    )
    const names = ['session_token', 'session_jwt', 'session_duration_minutes']
    await fc.assert(
      fc.asyncProperty(jsonRequest('/v1/sessions/authenticate', rawBody(body, names)), async (input) => {
        await checkJsonRoute(input, (o) => {
          expect(o.json?.session).toMatchObject({ session_id: expect.stringMatching(/^session-test-/) })
          expect(Object.keys(changedTables(o.before, o.after)).every((t) => SESSION_TABLES.includes(t))).toBe(true)
          expect(o.after.tables.sessions?.rows).toBe(o.before.tables.sessions?.rows)
        })
      }),
      { numRuns: FUZZ_RUNS.sessions },
    )
  })

  it('revoke: Stytch JSON, never 5xx; a rejection changes nothing; a success removes one session', async () => {
    const body = bodyObject(
      { session_id: field(sessionId()), session_token: field(token()), session_jwt: field(jwt()) },
      [],
    )
    await fc.assert(
      fc.asyncProperty(
        jsonRequest('/v1/sessions/revoke', rawBody(body, ['session_id', 'session_token'])),
        async (input) => {
          await checkJsonRoute(input, (o) => {
            expect(Object.keys(changedTables(o.before, o.after)).every((t) => SESSION_TABLES.includes(t))).toBe(true)
            expect(o.after.tables.sessions?.rows).toBe((o.before.tables.sessions?.rows ?? 0) - 1)
          })
        },
      ),
      { numRuns: Math.ceil(FUZZ_RUNS.sessions / 3) },
    )
  })
})

describe('fuzz: GET /v1/sessions and the JWKS', () => {
  it('GET /v1/sessions?user_id=: Stytch JSON, never 5xx, changes nothing', async () => {
    const userId = fc.oneof(
      { arbitrary: fc.constantFrom(...pool.userIds), weight: 2 },
      fc.uuid().map((u) => `user-test-${u}`),
      printable(40),
      hugeString.map((s) => s.slice(0, 2_000)),
    )
    const query = fc
      .option(userId, { nil: undefined })
      .map((id) => (id === undefined ? '' : `?${new URLSearchParams({ user_id: id })}`))
    await fc.assert(
      fc.asyncProperty(credentials(TEST_PROJECT), query, async (creds, search) => {
        const headers: Record<string, string> = creds.header === undefined ? {} : { authorization: creds.header }
        const o = await exchange({ method: 'GET', path: `/v1/sessions${search}`, headers })
        const errorType = expectWellFormed(o)
        if (!creds.valid) expect(errorType).toBe('unauthorized_credentials')
        if (errorType === null) expect(Array.isArray(o.json?.sessions)).toBe(true)
        expectNothingChanged(o)
      }),
      { numRuns: Math.ceil(FUZZ_RUNS.sessions / 3) },
    )
  })

  it('GET /v1/sessions/jwks/{project_id}: public, never 5xx, never a private key, changes nothing', async () => {
    const projectId = fc.oneof(
      fc.constant(TEST_PROJECT.id),
      fc.uuid().map((u) => `project-test-${u}`),
      printable(40)
        .filter((s) => s.length > 0 && s !== '.' && s !== '..')
        .map(encodeURIComponent),
    )
    await fc.assert(
      fc.asyncProperty(projectId, async (id) => {
        const o = await exchange({ method: 'GET', path: `/v1/sessions/jwks/${id}`, headers: {} })
        expect(expectWellFormed(o)).toBeNull()
        for (const key of (o.json?.keys ?? []) as Record<string, unknown>[]) {
          expect(Object.keys(key).sort()).toEqual(['alg', 'e', 'key_ops', 'kid', 'kty', 'n', 'use'])
        }
        expectNothingChanged(o)
      }),
      { numRuns: Math.ceil(FUZZ_RUNS.sessions / 3) },
    )
  })
})
