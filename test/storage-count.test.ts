import { createExecutionContext, createMessageBatch, getQueueResult } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import bench from '../src/bench/entry'
import { HISTORY_PATH } from '../src/bench/history'
import { SEARCH_USERS_PATH } from '../src/bench/search'
import {
  D1_ROWS_HEADER,
  D1_STATEMENTS_HEADER,
  DELIVERY_COUNTS_PATH,
  type DeliveryCounts,
  formatCounts,
  LOG_LINES_HEADER,
  parseCounts,
  parseRows,
  STORAGE_OPS_HEADER,
  type StorageCounts,
} from '../src/bench/storage-count'
import { DELIVERY_QUEUE } from '../src/delivery/consumer'
import { call, callJson, issueCode, type TestProject } from './helpers'
import { project, wrong } from './otp-helpers'

// The bench's storage accounting (src/bench/storage-count.ts), and through it the storage targets
// (one D1 round trip, one KV write, one queue send per login_or_create) on a warm isolate: they hold
// here, in CI, not only in a bench run. Requests go to the bench's entry point (src/bench/entry.ts),
// the only one that counts; the production entry is checked to carry none of it.

const flagged = (base: Env = env) => ({ ...base, BENCH_COUNT_STORAGE: '1' }) as Env
const ops = (res: { headers: Headers }) => parseCounts(res.headers.get(STORAGE_OPS_HEADER))
const written = (res: { headers: Headers }) => parseRows(res.headers.get(D1_ROWS_HEADER))?.written
const only = (counts: Partial<StorageCounts>): StorageCounts => ({
  d1: 0,
  kv_read: 0,
  kv_write: 0,
  kv_delete: 0,
  queue_send: 0,
  ...counts,
})

/** login_or_create with counting on; returns the reply, its counts and the code it queued. */
async function countedLogin(p: TestProject, phoneNumber: string) {
  const { code, phoneId, ...res } = await issueCode(p, { phone_number: phoneNumber }, { env: flagged(), worker: bench })
  return { res, counts: ops(res), code, phoneId }
}

const countedAuth = (p: TestProject, phoneId: string, code: string) =>
  callJson('POST', '/v1/otps/authenticate', {
    project: p,
    body: { method_id: phoneId, code },
    env: flagged(),
    worker: bench,
  })

describe('storage accounting (BENCH_COUNT_STORAGE)', () => {
  it('is off unless the variable is exactly "1": no header, same reply', async () => {
    for (const value of [undefined, '0', 'true', ' 1']) {
      const res = await call('GET', '/health', { env: { ...env, BENCH_COUNT_STORAGE: value } as Env, worker: bench })
      expect(res.status).toBe(200)
      expect(res.headers.has(STORAGE_OPS_HEADER)).toBe(false)
    }
    const res = await callJson('POST', '/v1/otps/whatsapp/login_or_create', {
      body: { phone_number: '+12025550190' },
      worker: bench,
    })
    expect(res.status).toBe(200)
    expect(res.headers.has(STORAGE_OPS_HEADER)).toBe(false)
  })

  it('is absent from the production entry even with the variable set: no headers, no seeding route', async () => {
    for (const path of ['/health', '/v1/otps/whatsapp/login_or_create']) {
      const body = path === '/health' ? undefined : { phone_number: '+12025550189' }
      const res = await call(body ? 'POST' : 'GET', path, { body, env: flagged() })
      expect(res.status).toBe(200)
      expect(res.headers.has(STORAGE_OPS_HEADER)).toBe(false)
      expect(res.headers.has(D1_ROWS_HEADER)).toBe(false)
    }
    for (const path of [HISTORY_PATH, SEARCH_USERS_PATH]) {
      const seed = await call('POST', path, { body: { project_id: 'p', from: 0, total: 1 }, env: flagged() })
      expect(seed.status).toBe(404)
    }
  })

  it('reports zero operations for GET /health and keeps status, body and headers', async () => {
    const res = await callJson('GET', '/health', { env: flagged(), worker: bench })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ status: 'ok', status_code: 200 })
    expect(res.headers.get('x-request-id')).toBe(res.body.request_id)
    expect(ops(res)).toEqual(only({}))
  })

  it('login_or_create for a new phone: 1 D1 round trip, 1 KV write, 1 queue send (warm isolate)', async () => {
    const p = await project()
    await countedLogin(p, '+12025550191') // the first request of a project also reads it from D1
    const { counts } = await countedLogin(p, '+12025550192')
    expect(counts).toEqual(only({ d1: 1, kv_write: 1, queue_send: 1 }))
  })

  it('login_or_create for an existing phone: the same, plus 1 KV read only while a code is live', async () => {
    const p = await project()
    const first = await countedLogin(p, '+12025550193')
    // A re-send while the first code is live carries its hash over (superseded codes): one KV read.
    const resend = await countedLogin(p, '+12025550193')
    expect(resend.counts).toEqual(only({ d1: 1, kv_read: 1, kv_write: 1, queue_send: 1 }))
    expect((await countedAuth(p, first.phoneId, resend.code)).status).toBe(200)
    // A returning user whose last code was used: no live code, no read.
    const returning = await countedLogin(p, '+12025550193')
    expect(returning.counts).toEqual(only({ d1: 1, kv_write: 1, queue_send: 1 }))
  })

  it('authenticate: right code 1 KV read, 1 D1 round trip; wrong code the same', async () => {
    const p = await project()
    const { phoneId, code } = await countedLogin(p, '+12025550194')
    const bad = await countedAuth(p, phoneId, wrong(code))
    expect(bad.status).toBe(404)
    expect(ops(bad)).toEqual(only({ d1: 1, kv_read: 1 }))
    const good = await countedAuth(p, phoneId, code)
    expect(good.status).toBe(200)
    expect(ops(good)).toEqual(only({ d1: 1, kv_read: 1 }))
  })

  it('authenticate when KV lags behind the gate: 1 KV read, 2 D1 round trips', async () => {
    const p = await project()
    const first = await countedLogin(p, '+12025550195')
    const staleRecord = await env.OTP_KV.get(`otp:${first.phoneId}`)
    const second = await countedLogin(p, '+12025550195')
    // The older code's KV write landed last (test/authenticate-stale-kv.test.ts): the gate's hash decides.
    await env.OTP_KV.put(`otp:${first.phoneId}`, staleRecord ?? '', { expirationTtl: 120 })
    let guess = wrong(second.code)
    if (guess === first.code) guess = wrong(guess) // the old code would be superseded, not wrong
    const bad = await countedAuth(p, first.phoneId, guess)
    expect(bad.status).toBe(404)
    expect(ops(bad)).toEqual(only({ d1: 2, kv_read: 1 }))
    const good = await countedAuth(p, first.phoneId, second.code)
    expect(good.status).toBe(200)
    expect(ops(good)).toEqual(only({ d1: 2, kv_read: 1 }))
  })

  it('reports the rows D1 read and wrote: none for the bare route, those of its batch for login_or_create', async () => {
    const rows = (res: { headers: Headers }) => parseRows(res.headers.get(D1_ROWS_HEADER))
    expect(rows(await callJson('GET', '/health', { env: flagged(), worker: bench }))).toEqual({
      read: 0,
      written: 0,
      ms: 0,
    })
    const p = await project()
    await countedLogin(p, '+12025550196')
    const { res } = await countedLogin(p, '+12025550197')
    const counted = rows(res)
    // A new user, phone, code and delivery plus three counters: at least seven rows written.
    expect(counted?.written).toBeGreaterThanOrEqual(7)
    expect(counted?.read).toBeGreaterThan(0)
    expect(counted?.ms).toBeGreaterThanOrEqual(0)
    for (const bad of [null, '', 'read=1', 'read=1, written=1', 'read=x, written=1, ms=1'])
      expect(parseRows(bad)).toBeNull()
  })

  it("seeds the search scenario's users in chunks: well-formed ids, one number each, every other verified", async () => {
    const p = await project()
    const seed = (from: number, total: number) =>
      call('POST', SEARCH_USERS_PATH, { body: { project_id: p.id, from, total }, env: flagged(), worker: bench })
    expect((await seed(0, 3)).status).toBe(200)
    expect((await seed(3, 5)).status).toBe(200)
    expect((await seed(5, 5)).status).toBe(200)
    const all = await callJson('POST', '/v1/users/search', { project: p, body: {} })
    const users = all.body.results as { user_id: string; phone_numbers: { phone_id: string; verified: boolean }[] }[]
    expect(users).toHaveLength(5)
    expect(users.map((u) => u.phone_numbers.map((n) => n.verified))).toEqual([
      [false],
      [true],
      [false],
      [true],
      [false],
    ])
    for (const u of users) {
      expect(u.user_id).toMatch(/^user-test-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      expect(u.phone_numbers[0]?.phone_id).toMatch(/^phone-number-test-[0-9a-f-]{36}$/)
      expect((await callJson('GET', `/v1/users/${u.user_id}`, { project: p })).status).toBe(200)
    }
  })

  it('formats and parses the header value, refusing malformed ones', () => {
    const counts = only({ d1: 2, kv_read: 1, queue_send: 3 })
    expect(formatCounts(counts)).toBe('d1=2, kv_read=1, kv_write=0, kv_delete=0, queue_send=3')
    expect(parseCounts(formatCounts(counts))).toEqual(counts)
    for (const bad of [null, '', 'd1=x', 'nope=1', 'd1=1;kv_read=2']) expect(parseCounts(bad)).toBeNull()
  })

  it('counts D1 statements and console lines: a successful login writes no line and runs few statements', async () => {
    const statements = (res: { headers: Headers }) => Number(res.headers.get(D1_STATEMENTS_HEADER))
    const lines = (res: { headers: Headers }) => Number(res.headers.get(LOG_LINES_HEADER))
    const health = await callJson('GET', '/health', { env: flagged(), worker: bench })
    expect([statements(health), lines(health)]).toEqual([0, 0])
    const p = await project()
    await countedLogin(p, '+12025550180') // the first request of a project also reads it from D1
    const { res, phoneId, code } = await countedLogin(p, '+12025550181')
    // Release of an attachment, user, phone, the owner with the live code, gate, delivery, the limits'
    // record and guard: no sweep, no second read of the phone.
    expect([statements(res), lines(res)]).toEqual([8, 0])
    const bad = await countedAuth(p, phoneId, wrong(code))
    // A wrong code is a refused attempt: it keeps its log line (and counts against the brake).
    expect(lines(bad)).toBe(1)
    const good = await countedAuth(p, phoneId, code)
    expect(good.status).toBe(200)
    // Consume, verify the phone, clear the user's failures, read the state with the user's phones:
    // nothing for attachments, SMS conversions or the brake, which cannot apply here.
    expect([statements(good), lines(good)]).toEqual([4, 0])
  })

  it('writes only the consumed code when a returning user logs in: the phone and user rows are left alone', async () => {
    const p = await project()
    const first = await countedLogin(p, '+12025550182')
    await countedAuth(p, first.phoneId, wrong(first.code))
    const firstAuth = await countedAuth(p, first.phoneId, first.code)
    expect(firstAuth.status).toBe(200)
    // The first success verifies the phone and clears the failure the wrong code counted.
    const firstWritten = written(firstAuth) ?? 0
    const again = await countedLogin(p, '+12025550182')
    const returning = await countedAuth(p, again.phoneId, again.code)
    expect(returning.status).toBe(200)
    expect(returning.body).toMatchObject({ user: { phone_numbers: [{ phone_id: first.phoneId, verified: true }] } })
    // The phone is verified and the user has no failures: only the gate row is written.
    expect(written(returning)).toBe(1)
    expect(firstWritten).toBeGreaterThan(1)
  })

  it('writes a counter row and a gate once each: WITHOUT ROWID tables keep no second copy in a key index', async () => {
    const p = await project()
    // D1 meters (and bills) every B-tree entry a row is written to. A new number's first login in a
    // project writes: the user (table, key index, users_project_created: 3), the phone (table, key
    // index, number, user and verified indexes: 5), the gate (its key's B-tree and the expiry index:
    // 2), the delivery (table, key index, phone and created indexes: 4) and three new counter rows
    // (each its key's B-tree and the expiry index: 6). As rowid tables the gate and each counter row
    // had one more entry each, in the key's automatic index: 24.
    const login = await countedLogin(p, '+12025550183')
    expect(written(login.res)).toBe(20)
  })

  it("counts the queue consumer's work apart: a batch of console deliveries is 2 D1 transactions and no line", async () => {
    const p = await project()
    const jobs = []
    for (let i = 0; i < 4; i++) {
      jobs.push((await issueCode(p, { phone_number: `+1202555017${i}` }, { deliver: false })).job)
    }
    const counts = async (method: 'GET' | 'POST') =>
      (await callJson(method, DELIVERY_COUNTS_PATH, { env: flagged(), worker: bench }))
        .body as unknown as DeliveryCounts
    await counts('POST') // from zero
    const batch = createMessageBatch(
      DELIVERY_QUEUE,
      jobs.map((body, i) => ({ id: `m${i}`, timestamp: new Date(), attempts: 1, body })),
    )
    const ctx = createExecutionContext()
    await bench.queue(batch, flagged(), ctx)
    expect((await getQueueResult(batch, ctx)).explicitAcks).toHaveLength(4)
    // One transaction leases the four jobs in one statement; one records them sent in one statement
    // and their outbox entries in another: three statements whatever the batch's size.
    expect(await counts('GET')).toMatchObject({ batches: 1, messages: 4, d1: 2, statements: 3, logs: 0 })
    expect((await counts('POST')).messages).toBe(4)
    expect((await counts('GET')).messages).toBe(0)
  })
})
