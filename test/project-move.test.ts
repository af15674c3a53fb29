import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { clearProjectCache, readProjectForMove } from '../src/db/projects'
import { shardCount, shardDb } from '../src/db/shard'
import { MOVED_TABLES, pageStatement, type Row } from '../src/db/shard-move'
import { clearSessionKeyCache } from '../src/sessions/keys'
import {
  abortMove,
  countRows,
  MOVE_LEASE_MS,
  MOVE_STEPS,
  type MoveDeps,
  type MoveStep,
  moveProject,
} from '../src/shards/move'
import { failingBatchDb } from './fault-env'
import { callJson, expectStytchError, issueCode, LENIENT_LIMITS, newProject, type TestProject } from './helpers'
import { authenticate } from './otp-helpers'
import { sessionsAuthenticate, sessionsRevoke, verifiesWithJwks } from './session-helpers'
import { freshPhone, runQueue } from './whatsapp-helpers'

/**
 * `npm run project:move` (src/shards/move.ts) on the two shards of the tests (DB: shard 0 and the
 * directory; DB_1: shard 1), through the real Worker. The clock is faked: where the move waits for
 * isolate caches and for the pause's grace, the test's sleep moves the clock on, so the Worker sees
 * exactly what it would see that long later, and nothing sleeps.
 */

const T0 = Date.parse('2026-12-01T09:00:00Z')

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] })
  vi.setSystemTime(T0)
})

class Crash extends Error {}

/** The move's dependencies: the test's shards, the faked clock, and a hook after each step. */
function deps(afterStep?: MoveDeps['afterStep'], shard: (n: number) => D1Database = (n) => shardDb(env, n)): MoveDeps {
  return {
    shard,
    shardCount: shardCount(env),
    now: () => Date.now(),
    sleep: async (ms) => {
      vi.setSystemTime(Date.now() + ms)
    },
    wait: true,
    ...(afterStep ? { afterStep } : {}),
  }
}

/** Every row of the project in `db`, table by table, in key order. */
async function projectRows(db: D1Database, projectId: string): Promise<Record<string, Row[]>> {
  const out: Record<string, Row[]> = {}
  for (const { table } of MOVED_TABLES) {
    out[table] = (await pageStatement(db, table, projectId, null, 100_000).all<Row>()).results
  }
  return out
}

/** A code for a fresh number, delivered by the consumer, and the login with it: the session's token and JWT. */
async function login(p: TestProject, phone = freshPhone()) {
  const issued = await issueCode(p, { phone_number: phone }, { deliver: false })
  await runQueue([issued.job])
  const res = await authenticate(p, { method_id: issued.phoneId, code: issued.code, session_duration_minutes: 600 })
  expect(res.status, JSON.stringify(res.body)).toBe(200)
  return { token: String(res.body.session_token), jwt: String(res.body.session_jwt), userId: issued.userId, phone }
}

/** A project with a few users, sessions, a signing key, deliveries, outbox messages and limit counters. */
async function busyProject(shard = 0) {
  const p = await newProject('test', { ...LENIENT_LIMITS }, shard)
  const logins = []
  for (let i = 0; i < 3; i++) logins.push(await login(p))
  await callJson('PUT', `/v1/users/${logins[0]?.userId}`, {
    project: p,
    body: { external_id: 'ext-a', trusted_metadata: { tier: 'gold' } },
  })
  await callJson('PUT', `/v1/users/${logins[1]?.userId}`, { project: p, body: { external_id: 'ext-b' } })
  return { p, logins }
}

/** Runs the move of `p` to `to` and stops it, as a crash would, right after `step`. */
async function stoppedAfter(step: MoveStep, p: TestProject, to = 1) {
  const stop = (done: MoveStep) => {
    if (done === step) throw new Crash(`stopped after ${done}`)
  }
  await expect(moveProject(deps(stop), { projectId: p.id, to })).rejects.toBeInstanceOf(Crash)
}

/** A login_or_create of the project: its status (503 while the move pauses it) and Retry-After. */
async function tryLogin(p: TestProject) {
  return callJson('POST', '/v1/otps/whatsapp/login_or_create', { project: p, body: { phone_number: freshPhone() } })
}

const empty = Object.fromEntries(MOVED_TABLES.map(({ table }) => [table, 0]))

describe('npm run project:move: a project from shard 0 to shard 1', () => {
  it('moves every row: a session and its JWT from before work after, and so does a code sent before', async () => {
    const { p, logins } = await busyProject()
    // A code sent before the move: its KV record stays (KV is global, keyed by the phone id, which
    // the move keeps); its gate row moves with the project.
    const pending = await issueCode(p, { phone_number: freshPhone(), expiration_minutes: 10 }, { deliver: false })
    const before = await projectRows(env.DB, p.id)
    expect(Object.values(await countRows(env.DB, p.id)).every((n) => n > 0)).toBe(true)

    const result = await moveProject(deps(), { projectId: p.id, to: 1 })

    expect(result).toMatchObject({ from: 0, to: 1, steps: [...MOVE_STEPS], done: true })
    expect(await projectRows(env.DB_1, p.id)).toEqual(before)
    expect(await countRows(env.DB, p.id)).toEqual(empty)
    expect(await readProjectForMove(env.DB, p.id)).toMatchObject({ shard: 1, move: null })
    // No trigger of the move is left, nor its log.
    const leftovers = await env.DB.prepare(
      `SELECT (SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger') AS triggers,
              (SELECT COUNT(*) FROM shard_move_log) AS log`,
    ).first()
    expect(leftovers).toEqual({ triggers: 0, log: 0 })

    const first = logins[0]
    if (!first) throw new Error('no login')
    expect((await sessionsAuthenticate(p, { session_jwt: first.jwt })).status).toBe(200)
    expect((await sessionsAuthenticate(p, { session_token: first.token })).status).toBe(200)
    expect(await verifiesWithJwks(p.id, first.jwt)).toBe(true)
    const sentBefore = await authenticate(p, { method_id: pending.phoneId, code: pending.code })
    expect(sentBefore.status, JSON.stringify(sentBefore.body)).toBe(200)
    await login(p)
    expect(await countRows(env.DB, p.id)).toEqual(empty)
  })

  // A crash between each pair of steps (and after the last): the next run finishes the move.
  for (const crashAfter of MOVE_STEPS.slice(0, -1)) {
    it(`resumes after a crash after "${crashAfter}": login before, 503 then success during, after; rows intact`, async () => {
      const { p, logins } = await busyProject()
      const session = logins[0]
      if (!session) throw new Error('no login')
      expect((await tryLogin(p)).status).toBe(200)
      const before = await projectRows(env.DB, p.id)

      await stoppedAfter(crashAfter, p)

      const record = await readProjectForMove(env.DB, p.id)
      const steps = MOVE_STEPS.slice(0, MOVE_STEPS.indexOf(crashAfter) + 1)
      const paused = steps.includes('pause') && !steps.includes('flip')
      if (paused) {
        // The pause starts when it was announced for: the project is answered 503 from then on.
        vi.setSystemTime(record?.move?.pauseAt ?? 0)
        const during = await tryLogin(p)
        expectStytchError(during, 503, 'service_unavailable')
        expect(Number(during.headers.get('retry-after'))).toBeGreaterThan(0)
      } else {
        // Before the pause and after the flip the project is served (from shard 0, then shard 1).
        const served = await login(p)
        expect(served.token).toBeTruthy()
      }
      const shardAfterCrash = steps.includes('flip') ? 1 : 0
      expect(record?.shard).toBe(shardAfterCrash)

      const expected = paused ? before : await projectRows(shardDb(env, shardAfterCrash), p.id)
      const resumed = await moveProject(deps(), { projectId: p.id, to: 1 })
      expect(resumed.steps).toEqual(MOVE_STEPS.slice(MOVE_STEPS.indexOf(crashAfter) + 1))
      expect(resumed.done).toBe(true)

      expect(await projectRows(env.DB_1, p.id)).toEqual(expected)
      expect(await countRows(env.DB, p.id)).toEqual(empty)
      expect(await countRows(env.DB_1, p.id)).toEqual(resumed.counts)
      expect((await sessionsAuthenticate(p, { session_jwt: session.jwt })).status).toBe(200)
      expect((await tryLogin(p)).status).toBe(200)
    })
  }

  it('copies again what changed while it copied, deletes what was deleted, and rows that swapped unique values', async () => {
    const { p, logins } = await busyProject()
    const [a, b, c] = logins
    if (!a || !b || !c) throw new Error('no logins')
    let reached = () => {}
    let release = () => {}
    const atPause = new Promise<void>((resolve) => {
      reached = resolve
    })
    const released = new Promise<void>((resolve) => {
      release = resolve
    })
    let atFlip: Record<string, Row[]> | undefined
    const moving = moveProject(
      deps(async (step) => {
        if (step === 'copy') {
          reached()
          await released
        }
        // What the source holds when the move is about to flip: the target must hold exactly that.
        if (step === 'catch_up') atFlip = await projectRows(env.DB, p.id)
      }),
      { projectId: p.id, to: 1 },
    )
    await atPause
    // Writes after the copy, before the pause: a new user and session, changed metadata, external
    // ids swapped between two users, a deleted user (and its phone, code and session), a revoked
    // session, a rotated signing key.
    const fresh = await login(p)
    const put = (userId: string, body: unknown) => callJson('PUT', `/v1/users/${userId}`, { project: p, body })
    expect((await put(a.userId, { external_id: 'ext-tmp' })).status).toBe(200)
    expect((await put(b.userId, { external_id: 'ext-a', untrusted_metadata: { moved: true } })).status).toBe(200)
    expect((await put(a.userId, { external_id: 'ext-b' })).status).toBe(200)
    expect((await callJson('DELETE', `/v1/users/${c.userId}`, { project: p })).status).toBe(200)
    expect((await sessionsRevoke(p, { session_token: b.token })).status).toBe(200)
    await env.DB.prepare('UPDATE session_signing_keys SET retired_at = ?2 WHERE project_id = ?1 AND retired_at IS NULL')
      .bind(p.id, Date.now())
      .run()
    clearSessionKeyCache()
    const rotated = await login(p)
    release()
    await moving

    expect(await projectRows(env.DB_1, p.id)).toEqual(atFlip)
    expect(await countRows(env.DB, p.id)).toEqual(empty)
    // What each change means, read back through the Worker on shard 1.
    const ext = (ref: string) => callJson('GET', `/v1/users/${ref}`, { project: p })
    expect((await ext('ext-a')).body).toMatchObject({ user_id: b.userId, untrusted_metadata: { moved: true } })
    expect((await ext('ext-b')).body).toMatchObject({ user_id: a.userId })
    expectStytchError(await callJson('GET', `/v1/users/${c.userId}`, { project: p }), 404, 'user_not_found')
    expectStytchError(await sessionsAuthenticate(p, { session_token: b.token }), 404, 'session_not_found')
    for (const s of [fresh, rotated, a])
      expect((await sessionsAuthenticate(p, { session_jwt: s.jwt })).status).toBe(200)
    expect(await verifiesWithJwks(p.id, a.jwt)).toBe(true)
    expect(await verifiesWithJwks(p.id, rotated.jwt)).toBe(true)
  })

  it('resumes a copy that failed half-way (a D1 error on the target), and copies nothing twice', async () => {
    const { p } = await busyProject()
    const before = await projectRows(env.DB, p.id)
    // The target's fourth batch fails: users, phones and codes are copied, the rest not.
    const failing = failingBatchDb(env.DB_1, 'throw', 3)
    await expect(
      moveProject(
        deps(undefined, (n) => (n === 1 ? failing.db : shardDb(env, n))),
        { projectId: p.id, to: 1 },
      ),
    ).rejects.toThrow(/Network connection lost/)
    expect(await readProjectForMove(env.DB, p.id)).toMatchObject({ shard: 0, move: { step: 'started' } })
    const resumed = await moveProject(deps(), { projectId: p.id, to: 1 })
    expect(resumed.steps).toEqual(MOVE_STEPS.slice(1))
    expect(await projectRows(env.DB_1, p.id)).toEqual(before)
  })

  it('can be abandoned before its flip: the pause ends, the copy and the triggers go, the project stays', async () => {
    const { p } = await busyProject()
    const before = await projectRows(env.DB, p.id)
    await stoppedAfter('pause', p)
    expect(await countRows(env.DB_1, p.id)).toEqual(await countRows(env.DB, p.id))

    expect(await abortMove(deps(), p.id)).toEqual({ projectId: p.id, shard: 0 })
    clearProjectCache()
    expect(await readProjectForMove(env.DB, p.id)).toMatchObject({ shard: 0, move: null })
    expect(await countRows(env.DB_1, p.id)).toEqual(empty)
    const anchor = await env.DB_1.prepare('SELECT COUNT(*) AS n FROM projects WHERE id = ?1').bind(p.id).first()
    expect(anchor).toEqual({ n: 0 })
    const triggers = await env.DB.prepare(`SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'trigger'`).first()
    expect(triggers).toEqual({ n: 0 })
    expect(await projectRows(env.DB, p.id)).toEqual(before)
    expect((await tryLogin(p)).status).toBe(200)
  })

  it('refuses what it cannot do, changing nothing', async () => {
    const { p } = await busyProject()
    await expect(moveProject(deps(), { projectId: p.id, to: 2 })).rejects.toThrow(/shard 2 does not exist/)
    await expect(moveProject(deps(), { projectId: `project-test-${crypto.randomUUID()}`, to: 1 })).rejects.toThrow(
      /no project/,
    )
    expect(await moveProject(deps(), { projectId: p.id, to: 0 })).toMatchObject({ steps: [], done: true })
    await stoppedAfter('start', p)
    await expect(moveProject(deps(), { projectId: p.id, to: 0 })).rejects.toThrow(/a move .* to shard 1 is under way/)
    await abortMove(deps(), p.id)
    expect(await readProjectForMove(env.DB, p.id)).toMatchObject({ shard: 0, move: null })
  })

  it('refuses a second run while one holds the move, and lets the next run take it once the first died', async () => {
    const { p } = await busyProject()
    let reached = () => {}
    let release = () => {}
    const holding = new Promise<void>((resolve) => {
      reached = resolve
    })
    const released = new Promise<void>((resolve) => {
      release = resolve
    })
    const first = moveProject(
      deps(async (step) => {
        if (step === 'copy') {
          reached()
          await released
        }
      }),
      { projectId: p.id, to: 1 },
    )
    await holding
    await expect(moveProject(deps(), { projectId: p.id, to: 1 })).rejects.toThrow(/another run is moving/)
    await expect(abortMove(deps(), p.id)).rejects.toThrow(/another run is moving/)
    release()
    expect((await first).done).toBe(true)

    // A run that died without giving its lease back (the process was killed) holds the move until
    // the lease ends; then the next run takes it and finishes.
    const { p: q } = await busyProject()
    await stoppedAfter('copy', q)
    await env.DB.prepare(`UPDATE projects SET move_owner = 'killed-run', move_owner_until = ?2 WHERE id = ?1`)
      .bind(q.id, Date.now() + MOVE_LEASE_MS)
      .run()
    await expect(moveProject(deps(), { projectId: q.id, to: 1 })).rejects.toThrow(/another run is moving/)
    vi.setSystemTime(Date.now() + MOVE_LEASE_MS)
    expect((await moveProject(deps(), { projectId: q.id, to: 1 })).done).toBe(true)
  })

  it('never starts a move that would delete the only copy of a project (a directory record gone stale)', async () => {
    const { p } = await busyProject(1)
    const rows = await projectRows(env.DB_1, p.id)
    // As after restoring the first database to before the project moved to shard 1.
    await env.DB.prepare('UPDATE projects SET shard = 0 WHERE id = ?1').bind(p.id).run()
    await expect(moveProject(deps(), { projectId: p.id, to: 1 })).rejects.toThrow(/its record may be stale/)
    expect(await projectRows(env.DB_1, p.id)).toEqual(rows)
    expect(await readProjectForMove(env.DB, p.id)).toMatchObject({ move: null })
  })
})

describe('npm run project:move: back from shard 1 to shard 0', () => {
  it('moves the rows back, and the anchor row leaves shard 1', async () => {
    const { p, logins } = await busyProject(1)
    const before = await projectRows(env.DB_1, p.id)
    const result = await moveProject(deps(), { projectId: p.id, to: 0 })
    expect(result).toMatchObject({ from: 1, to: 0, done: true })
    expect(await projectRows(env.DB, p.id)).toEqual(before)
    expect(await countRows(env.DB_1, p.id)).toEqual(empty)
    const anchor = await env.DB_1.prepare('SELECT COUNT(*) AS n FROM projects WHERE id = ?1').bind(p.id).first()
    expect(anchor).toEqual({ n: 0 })
    expect((await sessionsAuthenticate(p, { session_jwt: logins[0]?.jwt })).status).toBe(200)
  })
})
