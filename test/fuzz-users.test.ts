import { env } from 'cloudflare:workers'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { attributes, bodyObject, field, hugeString, phoneLike, printable, rawBody } from './fuzz-arbitraries'
import { changedTables, exchange, expectNothingChanged, expectWellFormed, type Outcome } from './fuzz-probe'
import { checkJsonRoute, FUZZ_RUNS, fuzzPool, jsonRequest, type Pool } from './fuzz-setup'
import { basicAuth, TEST_PROJECT } from './helpers'
import { quietConsole } from './log-capture'

/**
 * Property-based tests of the Users API routes with a JSON body (create, update, search, exchange
 * the number) and of DELETE …/external_id: the same properties as the other fuzz files (never a
 * 5xx, always Stytch-shaped JSON, a rejection changes nothing), plus what an accepted request may
 * change: only the users and phones rows it is about, never a KV write or a queue send.
 */

let pool: Pool
// External ids given to half of the pool's users, so generated ids also name real users.
const EXTERNAL_IDS = ['ext-0', 'ext-1', 'ext-2', 'ext-3']

beforeAll(async () => {
  quietConsole()
  pool = await fuzzPool(env)
  await env.DB.batch(
    EXTERNAL_IDS.map((id, i) =>
      env.DB.prepare('UPDATE users SET external_id = ?1 WHERE id = ?2').bind(id, pool.userIds[i] ?? ''),
    ),
  )
})

const externalId = fc.oneof(
  { arbitrary: fc.constantFrom(...EXTERNAL_IDS), weight: 3 },
  { arbitrary: fc.string({ unit: fc.constantFrom(...'abcXYZ019._|-'), minLength: 1, maxLength: 20 }), weight: 3 },
  fc.uuid().map((u) => `user-test-${u}`),
  printable(140),
)

/** A user reference as it can appear in a path or a user_id filter (built once the pool exists). */
const userRef = () =>
  fc
    .oneof(
      { arbitrary: fc.constantFrom(...pool.userIds), weight: 4 },
      { arbitrary: fc.constantFrom(...EXTERNAL_IDS), weight: 2 },
      fc.uuid().map((u) => `user-test-${u}`),
      externalId,
      printable(40),
    )
    // An empty or dot segment leaves the route (URL parsing), so it never reaches a user_id check.
    .filter((ref) => ref !== '' && ref !== '.' && ref !== '..')

const metadata = fc.oneof(
  { arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }), weight: 4 },
  fc.constant({ big: 'x'.repeat(4_100) }),
  fc.dictionary(fc.constantFrom('__proto__', 'constructor', 'a'), fc.constantFrom(null, 1, 'v')),
)

const name = fc.record(
  { first_name: field(printable(20)), middle_name: field(printable(20)), last_name: field(printable(20)) },
  { requiredKeys: [] },
)

const encodePath = (id: string) => encodeURIComponent(id)

/**
 * Only users and phones (and the gate of a released or replaced phone) may change when a users
 * request is accepted, plus the new-user event a create records for its limit; never KV or the queue.
 */
function expectOnlyUsersChanged(o: Outcome) {
  const changed = Object.keys(changedTables(o.before, o.after))
  for (const table of changed) expect(['users', 'phones', 'otp_codes', 'limit_counters']).toContain(table)
  expect(o.kvPuts).toEqual([])
  expect(o.queueSends).toEqual([])
}

const asPut = <T extends { request: { method: string } }>(input: T): T => ({
  ...input,
  request: { ...input.request, method: 'PUT' },
})

describe('fuzz: POST /v1/users', () => {
  it('is Stytch JSON, never 5xx; an accepted create adds one user with one phone; a rejection changes nothing', async () => {
    const body = bodyObject(
      {
        phone_number: field(fc.oneof(phoneLike, fc.constantFrom(...pool.phoneNumbers))),
        name: field(name),
        attributes: field(attributes),
        create_user_as_pending: field(fc.boolean()),
        trusted_metadata: field(metadata),
        untrusted_metadata: field(metadata),
        external_id: field(externalId),
        email: field(fc.constant('a@example.com')),
        roles: field(fc.constantFrom([], ['admin'])),
      },
      ['phone_number'],
    )
    const fields = ['phone_number', 'trusted_metadata', 'external_id', 'roles']
    await fc.assert(
      fc.asyncProperty(jsonRequest('/v1/users', rawBody(body, fields)), async (input) => {
        await checkJsonRoute(input, (o) => {
          expect(Object.keys(o.json ?? {}).sort()).toEqual(
            ['email_id', 'phone_id', 'request_id', 'status', 'status_code', 'user', 'user_id'].sort(),
          )
          expectOnlyUsersChanged(o)
          expect(o.after.tables.users?.rows).toBe((o.before.tables.users?.rows ?? 0) + 1)
          // The new user is counted: a new minute bucket or one more in the current one.
          expect(Object.keys(changedTables(o.before, o.after))).toContain('limit_counters')
        })
      }),
      { numRuns: FUZZ_RUNS.usersCreate },
    )
  })
})

describe('fuzz: PUT /v1/users/{user_id}', () => {
  it('is Stytch JSON, never 5xx; an accepted update changes only that user; a rejection changes nothing', async () => {
    const body = bodyObject(
      {
        name: field(name),
        trusted_metadata: field(metadata),
        untrusted_metadata: field(metadata),
        external_id: field(externalId),
        attributes: field(attributes),
        roles: field(fc.constantFrom([], ['admin'])),
      },
      [],
    )
    const request = fc
      .tuple(userRef(), jsonRequest('/', rawBody(body, ['name', 'external_id'])))
      .map(([ref, input]) => asPut({ ...input, request: { ...input.request, path: `/v1/users/${encodePath(ref)}` } }))
    await fc.assert(
      fc.asyncProperty(request, async (input) => {
        await checkJsonRoute(input, (o) => {
          expect(pool.userIds).toContain(o.json?.user_id)
          expectOnlyUsersChanged(o)
          expect(Object.keys(changedTables(o.before, o.after)).filter((t) => t !== 'users')).toEqual([])
        })
      }),
      { numRuns: FUZZ_RUNS.usersUpdate },
    )
  })
})

describe('fuzz: POST /v1/users/search', () => {
  const operand = () =>
    fc.oneof(
      fc.record({
        filter_name: fc.constant('phone_number'),
        filter_value: fc.array(fc.oneof(phoneLike, fc.constantFrom(...pool.phoneNumbers)), { maxLength: 3 }),
      }),
      fc.record({
        filter_name: fc.constant('phone_id'),
        filter_value: fc.array(fc.oneof(printable(20), fc.constantFrom(...pool.phoneIds)), { maxLength: 3 }),
      }),
      fc.record({ filter_name: fc.constant('user_id'), filter_value: fc.array(userRef(), { maxLength: 3 }) }),
      fc.record({ filter_name: fc.constant('phone_verified'), filter_value: field(fc.boolean()) }),
      fc.record({
        filter_name: fc.constant('status'),
        filter_value: field(fc.constantFrom('active', 'pending', 'deleted')),
      }),
      fc.record({
        filter_name: fc.constantFrom('created_at_greater_than', 'created_at_less_than'),
        filter_value: field(fc.date({ noInvalidDate: true }).map((d) => d.toISOString())),
      }),
      fc.record({
        filter_name: fc.constant('created_at_between'),
        filter_value: fc.record({
          greater_than: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
          less_than: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
        }),
      }),
      fc.record({ filter_name: printable(20), filter_value: fc.jsonValue({ maxDepth: 1 }) }),
    )
  it('is Stytch JSON, never 5xx, changes nothing but its search budget; pages hold at most limit users', async () => {
    const operands = operand()
    const body = bodyObject(
      {
        limit: field(fc.oneof(fc.integer({ min: 1, max: 1_000 }), fc.integer({ min: -5, max: 2_000 }))),
        cursor: field(fc.oneof(printable(40), fc.base64String({ maxLength: 60 }))),
        query: field(
          fc.record({
            operator: field(fc.constantFrom('AND', 'OR', 'and', 'XOR')),
            operands: field(fc.array(operands, { maxLength: 4 })),
          }),
        ),
      },
      [],
    )
    await fc.assert(
      fc.asyncProperty(jsonRequest('/v1/users/search', rawBody(body, ['limit', 'query'])), async (input) => {
        const o = await checkJsonRoute(input, (accepted, sent) => {
          const results = accepted.json?.results as unknown[]
          const meta = accepted.json?.results_metadata as { total: number; next_cursor: string | null }
          const limit = typeof sent.limit === 'number' ? sent.limit : 100
          expect(results.length).toBeLessThanOrEqual(limit)
          expect(meta.total).toBeGreaterThanOrEqual(results.length)
        })
        // An answered search records the rows it read against the project's search budget, nothing else.
        expectNothingChanged(o, o.status === 200 ? ['limit_counters'] : [])
      }),
      { numRuns: FUZZ_RUNS.usersSearch },
    )
  })
})

describe('fuzz: PUT /v1/users/{user_id}/exchange_primary_factor', () => {
  it('is Stytch JSON, never 5xx; an accepted exchange leaves the number pending beside the old one; a rejection changes nothing', async () => {
    const body = bodyObject(
      {
        phone_number: field(fc.oneof(phoneLike, fc.constantFrom(...pool.phoneNumbers))),
        email_address: field(fc.constant('a@example.com')),
      },
      ['phone_number'],
    )
    const request = fc.tuple(userRef(), jsonRequest('/', rawBody(body, ['phone_number']))).map(([ref, input]) =>
      asPut({
        ...input,
        request: { ...input.request, path: `/v1/users/${encodePath(ref)}/exchange_primary_factor` },
      }),
    )
    await fc.assert(
      fc.asyncProperty(request, async (input) => {
        await checkJsonRoute(input, (o, sent) => {
          expect(pool.userIds).toContain(o.json?.user_id)
          expectOnlyUsersChanged(o)
          expect(o.after.tables.users?.content).toBe(o.before.tables.users?.content)
          // The user's one number, then the number asked for, pending (or that number alone when it
          // was the user's already): one phone added, replaced or cancelled at most.
          const numbers =
            (o.json?.user as { phone_numbers: { phone_number: string }[] } | undefined)?.phone_numbers ?? []
          expect(numbers.length).toBeGreaterThan(0)
          expect(numbers.length).toBeLessThanOrEqual(2)
          expect(numbers.at(-1)?.phone_number).toBe(sent.phone_number)
          const rows = (o.after.tables.phones?.rows ?? 0) - (o.before.tables.phones?.rows ?? 0)
          expect(Math.abs(rows)).toBeLessThanOrEqual(1)
        })
      }),
      { numRuns: FUZZ_RUNS.usersExchange },
    )
  })
})

describe('fuzz: DELETE /v1/users/{user_id}/external_id', () => {
  it('is Stytch JSON, never 5xx; only the user row may change; a rejection changes nothing', async () => {
    const request = fc.tuple(
      fc.boolean(),
      fc.oneof(
        userRef(),
        hugeString.map((s) => s.slice(0, 300)),
      ),
    )
    await fc.assert(
      fc.asyncProperty(request, async ([authorised, ref]) => {
        const headers: Record<string, string> = authorised ? { authorization: basicAuth(TEST_PROJECT) } : {}
        const o = await exchange({ method: 'DELETE', path: `/v1/users/${encodePath(ref)}/external_id`, headers })
        const errorType = expectWellFormed(o)
        if (!authorised) expect(errorType).toBe('unauthorized_credentials')
        if (errorType !== null) return expectNothingChanged(o)
        expect(pool.userIds).toContain(o.json?.user_id)
        expect(Object.keys(changedTables(o.before, o.after)).filter((t) => t !== 'users')).toEqual([])
        expect(o.kvPuts).toEqual([])
      }),
      { numRuns: FUZZ_RUNS.usersExternalId },
    )
  })
})
