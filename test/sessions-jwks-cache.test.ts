import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { clearSessionKeyCache, trustedKeys } from '../src/sessions/keys'
import { callJson, countingEnv, newProject } from './helpers'
import { login } from './session-helpers'

/**
 * The public JWKS route reaches the per-isolate key cache with any project id. Empty key sets are
 * cached apart from real ones, so a flood of made-up ids cannot evict the keys of real projects.
 */

const T0 = Date.parse('2026-11-27T10:00:00Z')

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] })
  vi.setSystemTime(T0)
  clearSessionKeyCache()
})

const jwksVia = async (projectId: string, bindings: Env) => {
  const res = await callJson<{ keys: { kid: string }[] }>('GET', `/v1/sessions/jwks/${projectId}`, {
    project: null,
    env: bindings,
  })
  expect(res.status).toBe(200)
  return res.body.keys
}

describe('JWKS key-set cache', () => {
  it('keeps the keys of a real project cached while more made-up ids than the cache holds are requested', async () => {
    const p = await newProject()
    await login(p, '+12025550190')
    const before = await jwksVia(p.id, env)
    expect(before).toHaveLength(1)

    // A database with no keys at all answers at once, so a thousand empty sets take no real D1 time.
    const noKeys = {
      prepare: () => ({ bind: () => ({ all: async () => ({ results: [] }) }) }),
    } as unknown as D1Database
    for (let i = 0; i < 1_001; i++) {
      expect(await trustedKeys({ ...env, DB: noKeys }, `project-test-${crypto.randomUUID()}`, Date.now())).toEqual([])
    }

    const counting = countingEnv()
    expect(await jwksVia(p.id, counting.env)).toEqual(before)
    expect(counting.d1()).toBe(0)
  })

  it('remembers an empty set, and forgets it as soon as this isolate creates the first key', async () => {
    const p = await newProject()
    const counting = countingEnv()
    expect(await jwksVia(p.id, counting.env)).toEqual([])
    expect(await jwksVia(p.id, counting.env)).toEqual([])
    // The project's directory record (which names its shard) and its empty key set, each read once.
    expect(counting.d1()).toBe(2)
    await login(p, '+12025550191')
    expect(await jwksVia(p.id, env)).toHaveLength(1)
  })
})
