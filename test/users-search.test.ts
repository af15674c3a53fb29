import { env } from 'cloudflare:workers'
import fc from 'fast-check'
import { describe, expect, it, vi } from 'vitest'
import bench from '../src/bench/entry'
import { D1_ROWS_HEADER, parseRows } from '../src/bench/storage-count'
import { Batch } from '../src/db/batch'
import { searchUsersStatements } from '../src/db/history-seed'
import { SEARCH_TOTAL_CAP } from '../src/db/user-search'
import { LIMITS, SEARCH_MIN_ROWS } from '../src/limits'
import { FUZZ_RUNS } from './fuzz-setup'
import { callJson, expectStytchError, type TestProject } from './helpers'
import { project } from './otp-helpers'

// What one users search may cost the database every project shares (D1 runs one query at a time):
// repeated filters are evaluated once, the total is counted up to a cap and only on a query's first
// page, the page's phones are read by the page's ids, and each project's searches have a budget of
// rows read per minute. What the filters mean is held by the examples and the model property below;
// SQLite's plans by test/users-search-plan.test.ts.

const MINUTE = 60_000
const T0 = Date.parse('2026-11-27T10:00:00Z')

type Reply = Awaited<ReturnType<typeof callJson<Record<string, unknown>>>>

const search = (p: TestProject, body: unknown, base: Env = env) =>
  callJson('POST', '/v1/users/search', { project: p, body, env: base })

/** A search through the bench's entry, which reports the rows D1 read for it (both round trips). */
async function searchCounted(p: TestProject, body: unknown): Promise<{ res: Reply; rowsRead: number }> {
  const res = await callJson('POST', '/v1/users/search', {
    project: p,
    body,
    env: { ...env, BENCH_COUNT_STORAGE: '1' } as Env,
    worker: bench,
  })
  expect(res.status, JSON.stringify(res.body)).toBe(200)
  return { res, rowsRead: parseRows(res.headers.get(D1_ROWS_HEADER))?.read ?? Number.NaN }
}

/** `n` users, one number each, every other one verified (the bench's seed), created 1 ms apart. */
async function seedUsers(p: TestProject, n: number): Promise<void> {
  const batch = new Batch()
  batch.addAll(searchUsersStatements(env.DB, p.id, 0, n))
  await batch.run(env.DB)
}

const metadata = (res: Reply) => res.body.results_metadata as { next_cursor: string | null; total: number }
const ids = (res: Reply) => (res.body.results as { user_id: string }[]).map((u) => u.user_id)
const unverified = { filter_name: 'phone_verified', filter_value: false }
const verified = { filter_name: 'phone_verified', filter_value: true }

async function searchBudget(p: TestProject): Promise<number> {
  const row = await env.DB.prepare(
    "SELECT COALESCE(SUM(n), 0) AS n FROM limit_counters WHERE project_id = ?1 AND kind = 'search_rows_per_minute'",
  )
    .bind(p.id)
    .first<{ n: number }>()
  return Number(row?.n)
}

/** Users created at T0 + i minutes with the given numbers (verified or not) and status, by SQL. */
async function usersWith(p: TestProject, specs: { verified: boolean[]; status?: string }[]): Promise<string[]> {
  const batch = new Batch()
  const made = specs.map((spec, i) => {
    const id = `user-test-${crypto.randomUUID()}`
    batch.add(
      env.DB.prepare('INSERT INTO users (id, project_id, status, created_at) VALUES (?1, ?2, ?3, ?4)').bind(
        id,
        p.id,
        spec.status ?? 'active',
        T0 + i * MINUTE,
      ),
    )
    for (const [j, v] of spec.verified.entries()) {
      batch.add(
        env.DB.prepare(
          `INSERT INTO phones (id, project_id, user_id, phone_number, verified, created_at)
           VALUES (?1, ?2, ?3, ?4, ?5, ?6)`,
        ).bind(
          `phone-number-test-${crypto.randomUUID()}`,
          p.id,
          id,
          `+1202555${String(100 + 10 * i + j).padStart(4, '0')}`,
          v ? 1 : 0,
          T0,
        ),
      )
    }
    return id
  })
  await batch.run(env.DB)
  return made
}

describe('users.search: the cost of one search', () => {
  it('a repeated filter is evaluated once: twenty copies read what one reads', async () => {
    const p = await project()
    await seedUsers(p, 2_000)
    // Odd users are verified: a search for a verified number walks past the users that are not.
    const query = (operator: string, operands: unknown[]) => ({ limit: 1_000, query: { operator, operands } })
    const one = await searchCounted(p, query('AND', [verified]))
    for (const operator of ['OR', 'AND']) {
      const twenty = await searchCounted(
        p,
        query(
          operator,
          Array.from({ length: 20 }, () => verified),
        ),
      )
      expect(ids(twenty.res)).toEqual(ids(one.res))
      // The same statements; only the budget counter, written by the first search, is read once more.
      expect(twenty.rowsRead).toBeLessThanOrEqual(one.rowsRead + 5)
    }
  })

  it('total counts up to SEARCH_TOTAL_CAP users and is -1 past it; later pages carry it and count nothing', async () => {
    const p = await project()
    await seedUsers(p, SEARCH_TOTAL_CAP + 1)
    const first = await searchCounted(p, { limit: 5 })
    expect(metadata(first.res).total).toBe(-1)
    const second = await searchCounted(p, { limit: 5, cursor: metadata(first.res).next_cursor })
    expect(metadata(second.res).total).toBe(-1)
    // Five users and their phones, one more user, and the budget: nothing near a walk of the project.
    expect(second.rowsRead).toBeLessThan(100)

    // Half of them have a verified number: counted exactly, and carried to the next pages.
    const byVerified = { limit: 1_000, query: { operator: 'AND', operands: [verified] } }
    const page = await searchCounted(p, byVerified)
    expect(metadata(page.res).total).toBe(SEARCH_TOTAL_CAP / 2)
    // Reading the phones of the page's users is all the next page adds to the page itself.
    const next = await searchCounted(p, { ...byVerified, cursor: metadata(page.res).next_cursor })
    expect(metadata(next.res).total).toBe(SEARCH_TOTAL_CAP / 2)
    expect(next.rowsRead).toBeLessThan(page.rowsRead)
    expect(ids(next.res)).toHaveLength(1_000)
    const onFirst = new Set(ids(page.res))
    expect(ids(next.res).filter((id) => onFirst.has(id))).toEqual([])
  })

  it("reads a page's phones by the page's user ids, never by running the page again", async () => {
    const p = await project()
    await seedUsers(p, 10)
    const statements: string[] = []
    const db = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === 'prepare') {
          return (sql: string) => {
            statements.push(sql)
            return target.prepare(sql)
          }
        }
        const value = Reflect.get(target, prop)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    const res = await search(p, { limit: 3, query: { operator: 'AND', operands: [unverified] } }, { ...env, DB: db })
    expect(res.status).toBe(200)
    expect((res.body.results as { phone_numbers: unknown[] }[]).map((u) => u.phone_numbers.length)).toEqual([1, 1, 1])
    const phoneReads = statements.filter((sql) => /SELECT p\.user_id, p\.id AS phone_id/.test(sql))
    expect(phoneReads).toHaveLength(1)
    expect(phoneReads[0]).not.toMatch(/\busers\b/)
  })
})

describe('users.search: what repeated and combined filters mean', () => {
  it('finds exactly the users a direct reading of every operand finds (model; FUZZ_SEED replays)', async () => {
    const p = await project()
    const made = await usersWith(p, [
      { verified: [] },
      { verified: [true] },
      { verified: [false] },
      { verified: [true, false] },
      { verified: [false], status: 'pending' },
      { verified: [true], status: 'pending' },
      { verified: [false, false] },
      { verified: [true, true, false] },
    ])
    // Two external ids, and an unverified attachment whose window passed: invisible, so it matches nothing.
    await env.DB.batch([
      env.DB.prepare("UPDATE users SET external_id = 'crm-1' WHERE id = ?1").bind(made[1]),
      env.DB.prepare("UPDATE users SET external_id = 'crm-4' WHERE id = ?1").bind(made[4]),
      env.DB.prepare(
        `INSERT INTO phones (id, project_id, user_id, phone_number, verified, attach_expires_at, created_at)
         VALUES (?1, ?2, ?3, '+12025550199', 0, 1, ?4)`,
      ).bind(`phone-number-test-${crypto.randomUUID()}`, p.id, made[0], T0),
    ])
    const users = (await search(p, { limit: 1_000 })).body.results as {
      user_id: string
      external_id?: string
      status: string
      created_at: string
      phone_numbers: { phone_id: string; phone_number: string; verified: boolean }[]
    }[]
    expect(users.map((u) => u.user_id)).toEqual(made)
    const numbers = [...users.flatMap((u) => u.phone_numbers.map((n) => n.phone_number)), '+12025550199']
    const phoneIds = [
      ...users.flatMap((u) => u.phone_numbers.map((n) => n.phone_id)),
      `phone-number-test-${crypto.randomUUID()}`,
    ]
    const userRefs = [...made, 'crm-1', 'crm-4', 'crm-9']
    const minute = fc.integer({ min: -1, max: made.length }).map((m) => new Date(T0 + m * MINUTE).toISOString())
    const someOf = (list: string[]) => fc.subarray(list, { minLength: 1, maxLength: 3 })
    const operand = fc.oneof(
      fc.record({ filter_name: fc.constant('phone_verified'), filter_value: fc.boolean() }),
      fc.record({ filter_name: fc.constant('status'), filter_value: fc.constantFrom('active', 'pending') }),
      fc.record({
        filter_name: fc.constantFrom('created_at_greater_than', 'created_at_less_than'),
        filter_value: minute,
      }),
      fc.record({
        filter_name: fc.constant('created_at_between'),
        filter_value: fc.record({ greater_than: minute, less_than: minute }),
      }),
      fc.record({ filter_name: fc.constant('phone_number'), filter_value: someOf(numbers) }),
      fc.record({ filter_name: fc.constant('phone_id'), filter_value: someOf(phoneIds) }),
      fc.record({ filter_name: fc.constant('user_id'), filter_value: someOf(userRefs) }),
    )
    type Operand = { filter_name: string; filter_value: unknown }
    const matches = (u: (typeof users)[number], o: Operand): boolean => {
      const created = Date.parse(u.created_at)
      const list = o.filter_value as string[]
      switch (o.filter_name) {
        case 'phone_verified':
          return u.phone_numbers.some((n) => n.verified === o.filter_value)
        case 'status':
          return u.status === o.filter_value
        case 'created_at_greater_than':
          return created > Date.parse(String(o.filter_value))
        case 'created_at_less_than':
          return created < Date.parse(String(o.filter_value))
        case 'created_at_between': {
          const range = o.filter_value as { greater_than: string; less_than: string }
          return created > Date.parse(range.greater_than) && created < Date.parse(range.less_than)
        }
        case 'phone_number':
          return u.phone_numbers.some((n) => list.includes(n.phone_number))
        case 'phone_id':
          return u.phone_numbers.some((n) => list.includes(n.phone_id))
        default:
          return list.includes(u.user_id) || (u.external_id !== undefined && list.includes(u.external_id))
      }
    }
    // A few distinct operands, repeated at random: the repetitions are what the reduction merges.
    const query = fc.record({
      operator: fc.constantFrom('AND', 'OR'),
      operands: fc
        .array(operand, { minLength: 1, maxLength: 4 })
        .chain((distinct) => fc.array(fc.constantFrom(...distinct), { maxLength: 10 })),
    })
    await fc.assert(
      fc.asyncProperty(query, async (q) => {
        const expected = users
          .filter((u) =>
            q.operands.length === 0
              ? true
              : q.operator === 'AND'
                ? q.operands.every((o) => matches(u, o))
                : q.operands.some((o) => matches(u, o)),
          )
          .map((u) => u.user_id)
        const res = await search(p, { limit: 1_000, query: q })
        expect(res.status, JSON.stringify(res.body)).toBe(200)
        expect(ids(res)).toEqual(expected)
        expect(metadata(res).total).toBe(expected.length)
      }),
      { numRuns: FUZZ_RUNS.usersSearchModel },
    )
  })

  it('phone_verified true and false: OR is any number, AND is both kinds; statuses: OR is all, AND is none', async () => {
    const p = await project()
    const [none, onlyVerified, onlyUnverified, both, pending] = await usersWith(p, [
      { verified: [] },
      { verified: [true] },
      { verified: [false] },
      { verified: [true, false] },
      { verified: [false], status: 'pending' },
    ])
    const found = async (operator: string, operands: unknown[]) => {
      const res = await search(p, { query: { operator, operands } })
      expect(res.status, JSON.stringify(res.body)).toBe(200)
      expect(metadata(res).total).toBe(ids(res).length)
      return ids(res)
    }
    expect(await found('OR', [verified, unverified, verified])).toEqual([onlyVerified, onlyUnverified, both, pending])
    expect(await found('AND', [verified, unverified, unverified])).toEqual([both])
    const active = { filter_name: 'status', filter_value: 'active' }
    const isPending = { filter_name: 'status', filter_value: 'pending' }
    expect(await found('OR', [active, isPending, verified])).toEqual([
      none,
      onlyVerified,
      onlyUnverified,
      both,
      pending,
    ])
    expect(await found('AND', [active, isPending])).toEqual([])
    expect(await found('AND', [isPending, isPending, unverified])).toEqual([pending])
    // created_at: under AND the bounds intersect; under OR a later lower bound than an upper one is everything.
    const at = (minutes: number) => new Date(T0 + minutes * MINUTE).toISOString()
    const later = (minutes: number) => ({ filter_name: 'created_at_greater_than', filter_value: at(minutes) })
    const earlier = (minutes: number) => ({ filter_name: 'created_at_less_than', filter_value: at(minutes) })
    const between = (a: number, b: number) => ({
      filter_name: 'created_at_between',
      filter_value: { greater_than: at(a), less_than: at(b) },
    })
    expect(await found('AND', [later(0), later(1), earlier(4), between(0, 3)])).toEqual([onlyUnverified])
    expect(await found('AND', [later(2), earlier(2)])).toEqual([])
    expect(await found('OR', [later(3), earlier(1)])).toEqual([none, pending])
    expect(await found('OR', [later(1), earlier(2)])).toEqual([none, onlyVerified, onlyUnverified, both, pending])
    expect(await found('OR', [between(2, 2), between(0, 2), between(0, 2)])).toEqual([onlyVerified])
    // Lists: OR merges them; AND keeps them apart (a user may hold a number of each).
    const numbers = async (u: string) =>
      ((await callJson('GET', `/v1/users/${u}`, { project: p })).body.phone_numbers as { phone_number: string }[]).map(
        (n) => n.phone_number,
      )
    const [v, w] = await numbers(String(both))
    const byNumber = (...list: (string | undefined)[]) => ({
      filter_name: 'phone_number',
      filter_value: list.map(String),
    })
    expect(await found('AND', [byNumber(v), byNumber(w), byNumber(w, v)])).toEqual([both])
    const [o] = await numbers(String(onlyVerified))
    expect(await found('OR', [byNumber(o), byNumber(w), byNumber(o)])).toEqual([onlyVerified, both])
  })
})

describe('the per-project search budget (search_rows_per_minute)', () => {
  it('refuses a project’s searches once they used the minute’s rows; another project searches on; a minute later, so does it', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const p = await project({ search_rows_per_minute: 2 * SEARCH_MIN_ROWS })
    const q = await project({ search_rows_per_minute: 2 * SEARCH_MIN_ROWS })
    const body = { query: { operator: 'AND', operands: [unverified] } }
    expect((await search(p, body)).status).toBe(200)
    expect((await search(p, body)).status).toBe(200)
    const before = await searchBudget(p)
    const refused = await search(p, body)
    expectStytchError(refused, 429, 'too_many_requests')
    expect(refused.body.error_message).toBe(LIMITS.search_rows_per_minute)
    // A refused search is charged nothing.
    expect(await searchBudget(p)).toBe(before)
    expect((await search(q, body)).status).toBe(200)
    // Bucketed by the minute: the reservations leave the window after one to two minutes.
    vi.setSystemTime(T0 + 2 * MINUTE)
    expect((await search(p, body)).status).toBe(200)
  })

  it('charges what a search read beyond its reservation: a search walking many users uses more', async () => {
    const p = await project({ search_rows_per_minute: 3 * SEARCH_MIN_ROWS })
    await seedUsers(p, 20_000)
    const byExternalId = { filter_name: 'user_id', filter_value: ['crm-1'] }
    const light = await searchCounted(p, { limit: 1, query: { operator: 'AND', operands: [byExternalId] } })
    expect(light.rowsRead).toBeLessThan(SEARCH_MIN_ROWS)
    expect(await searchBudget(p)).toBe(SEARCH_MIN_ROWS)
    // No user is pending: the page and the count walk all 20,000.
    const pending = {
      limit: 1,
      query: { operator: 'AND', operands: [{ filter_name: 'status', filter_value: 'pending' }] },
    }
    const heavy = await searchCounted(p, pending)
    expect(heavy.rowsRead).toBeGreaterThanOrEqual(2 * 20_000)
    const charged = (await searchBudget(p)) - SEARCH_MIN_ROWS
    // Everything its first round trip read: all of heavy.rowsRead but what settling the charge read.
    expect(charged).toBeGreaterThanOrEqual(2 * 20_000)
    expect(charged).toBeLessThanOrEqual(heavy.rowsRead)
    expectStytchError(await search(p, { limit: 1 }), 429, 'too_many_requests')
  })

  it('holds under concurrency: with room for three searches, exactly three of ten parallel ones run', async () => {
    const p = await project({ search_rows_per_minute: 3 * SEARCH_MIN_ROWS })
    await seedUsers(p, 50)
    const replies = await Promise.all(Array.from({ length: 10 }, () => search(p, { limit: 10 })))
    expect(replies.map((r) => r.status).sort()).toEqual([200, 200, 200, 429, 429, 429, 429, 429, 429, 429])
    expect(await searchBudget(p)).toBe(3 * SEARCH_MIN_ROWS)
  })
})
