import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { sha256, toHex } from '../src/crypto'
import { findProject, PROJECT_REREAD_MIN_MS, UNKNOWN_PROJECT_TTL_MS } from '../src/db/projects'
import { PROJECT_CACHE_TTL_MS, projectUpdateNotice } from '../src/settings'
import { callJson, countingEnv, expectStytchError, newProject, type TestProject } from './helpers'
import { sdkCall, sdkProject } from './sdk-helpers'

/**
 * The per-isolate project cache behind Basic auth: a rotated secret is accepted at once (a mismatch
 * re-reads the record, at most once a second) and the old one refused within the cache lifetime, and
 * unknown ids are remembered briefly in a cache of their own.
 */

const T0 = Date.parse('2026-11-27T10:00:00Z')

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] })
  vi.setSystemTime(T0)
})

/**
 * An authenticated request that touches nothing past the credentials: a malformed user id is refused
 * (400) only once they are accepted, so every D1 read counted is the project lookup.
 */
const probe = (credentials: Pick<TestProject, 'id' | 'secret'>, options: { env?: Env } = {}) =>
  callJson('GET', '/v1/users/user-test-not-a-uuid', { project: credentials, ...options })

const accepted = (res: { status: number }) => res.status === 400

/** What `npm run project:update -- --rotate-secret` does to the row. */
async function rotateInD1(p: TestProject): Promise<TestProject> {
  const secret = `secret-test-${crypto.randomUUID()}`
  await env.DB.prepare('UPDATE projects SET secret_hash = ?2 WHERE id = ?1')
    .bind(p.id, toHex(await sha256(secret)))
    .run()
  return { ...p, secret }
}

describe('secret rotation with a warm project cache', () => {
  it('accepts the new secret at once and refuses the old one after that re-read', async () => {
    const old = await newProject()
    expect(accepted(await probe(old))).toBe(true) // the record is now cached
    vi.setSystemTime(T0 + 5_000) // well inside the cache lifetime
    const rotated = await rotateInD1(old)
    expect(accepted(await probe(rotated))).toBe(true)
    expectStytchError(await probe(old), 401, 'unauthorized_credentials')
    // And stays so: the cache now holds the rotated record.
    vi.setSystemTime(T0 + 10_000)
    expect(accepted(await probe(rotated))).toBe(true)
    expectStytchError(await probe(old), 401, 'unauthorized_credentials')
  })

  it('refuses the old secret everywhere within the cache lifetime, which project:update states', async () => {
    const old = await newProject()
    expect(accepted(await probe(old))).toBe(true) // an isolate reads the record at T0
    vi.setSystemTime(T0 + 5_000)
    await rotateInD1(old)
    // That isolate has not seen the new secret: it still accepts the old one, until its copy expires.
    vi.setSystemTime(T0 + PROJECT_CACHE_TTL_MS - 1)
    expect(accepted(await probe(old))).toBe(true)
    vi.setSystemTime(T0 + PROJECT_CACHE_TTL_MS)
    expectStytchError(await probe(old), 401, 'unauthorized_credentials')
    // The operator is told exactly that, not that the old secret stops on its next use.
    const notice = projectUpdateNotice(true)
    expect(notice).toContain(`within ${PROJECT_CACHE_TTL_MS / 1_000} seconds`)
    expect(notice).not.toMatch(/next use/)
  })

  it('re-reads a project at most once a second however many wrong secrets arrive', async () => {
    const p = await newProject()
    expect(accepted(await probe(p))).toBe(true)
    vi.setSystemTime(T0 + 2 * PROJECT_REREAD_MIN_MS)
    const counting = countingEnv()
    const wrong = { id: p.id, secret: `secret-test-${crypto.randomUUID()}` }
    for (let i = 0; i < 10; i++)
      expectStytchError(await probe(wrong, { env: counting.env }), 401, 'unauthorized_credentials')
    expect(counting.d1()).toBe(1)
    // A second later the next wrong secret may look again, once.
    vi.setSystemTime(T0 + 3 * PROJECT_REREAD_MIN_MS)
    for (let i = 0; i < 10; i++)
      expectStytchError(await probe(wrong, { env: counting.env }), 401, 'unauthorized_credentials')
    expect(counting.d1()).toBe(2)
    // The right secret is still answered from the cache.
    const right = countingEnv()
    expect(accepted(await probe(p, { env: right.env }))).toBe(true)
    expect(right.d1()).toBe(0)
  })
})

describe('unknown project ids', () => {
  it('are looked up in D1 once, then refused from the isolate cache until it expires', async () => {
    const id = `project-test-${crypto.randomUUID()}`
    const counting = countingEnv()
    for (let i = 0; i < 5; i++) {
      expectStytchError(
        await probe({ id, secret: 'secret-test-x' }, { env: counting.env }),
        401,
        'unauthorized_credentials',
      )
    }
    expect(counting.d1()).toBe(1)
    vi.setSystemTime(T0 + UNKNOWN_PROJECT_TTL_MS)
    expectStytchError(
      await probe({ id, secret: 'secret-test-x' }, { env: counting.env }),
      401,
      'unauthorized_credentials',
    )
    expect(counting.d1()).toBe(2)
  })

  it('never evict a real project from the cache, however many are tried', async () => {
    const p = await newProject()
    expect(accepted(await probe(p))).toBe(true)
    // More unknown ids than the cache holds projects, looked up as the middleware looks them up.
    // A database that knows no project answers at once, so a thousand misses take no real D1 time.
    const empty = {
      prepare: () => ({ bind: () => ({ first: async () => null }) }),
    } as unknown as D1Database
    for (let i = 0; i < 1_001; i++) {
      expect(await findProject(empty, `project-test-${crypto.randomUUID()}`, Date.now())).toBeNull()
    }
    const counting = countingEnv()
    expect(accepted(await probe(p, { env: counting.env }))).toBe(true)
    expect(counting.d1()).toBe(0)
  })
})

describe('public tokens (/sdk/v1) with a warm project cache', () => {
  const bootstrap = (token: string, options: { env?: Env } = {}) =>
    sdkCall('GET', `/projects/bootstrap/${token}`, { publicToken: token }, options)

  it('a cached token costs no D1 read; an unknown one one read per UNKNOWN_PROJECT_TTL_MS', async () => {
    const p = await sdkProject()
    expect((await bootstrap(p.publicToken)).status).toBe(200)
    const counting = countingEnv()
    for (let i = 0; i < 5; i++) expect((await bootstrap(p.publicToken, { env: counting.env })).status).toBe(200)
    expect(counting.d1()).toBe(0)

    const unknown = `public-token-test-${crypto.randomUUID()}`
    for (let i = 0; i < 5; i++)
      expectStytchError(await bootstrap(unknown, { env: counting.env }), 401, 'unauthorized_credentials')
    expect(counting.d1()).toBe(1)
    vi.setSystemTime(T0 + UNKNOWN_PROJECT_TTL_MS)
    expectStytchError(await bootstrap(unknown, { env: counting.env }), 401, 'unauthorized_credentials')
    expect(counting.d1()).toBe(2)
  })

  it('after a rotation the old token stops once the cached record expires, even if the new one is never used', async () => {
    const p = await sdkProject()
    expect((await bootstrap(p.publicToken)).status).toBe(200)
    const rotated = `public-token-test-${crypto.randomUUID()}`
    await env.DB.prepare('UPDATE projects SET public_token = ?2 WHERE id = ?1').bind(p.id, rotated).run()
    vi.setSystemTime(T0 + 30_000) // the project cache's lifetime
    expectStytchError(await bootstrap(p.publicToken), 401, 'unauthorized_credentials')
    expect((await bootstrap(rotated)).status).toBe(200)
  })
})
