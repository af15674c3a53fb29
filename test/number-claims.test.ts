/// <reference types="vite/types/importMeta.d.ts" />
import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import { ownsNumber } from '../src/db/phones'
import { callJson, expectStytchError, issueCode, type TestProject } from './helpers'
import { authenticate, dbPhone, exchangeNumber, getUser, loginCode, project, send } from './otp-helpers'
import { login } from './session-helpers'

/**
 * The claim rule (src/db/phones.ts): an unverified number is an owner claim only on the user that
 * login_or_create or users.create minted for it. Every other path that puts an unproven number on a
 * user makes an attachment: released by the owner's login_or_create / users.create, lapsing after
 * its window, verifiable only by the attaching user's own code. This file goes over every path that
 * can put a number on a user and checks each against every consequence of the rule.
 */

const NUMBER = '+12025550171'
const HOLDER_PHONE = '+12025550170'
const OTHER_PHONE = '+12025550172'
const T0 = new Date('2026-11-27T10:00:00Z').getTime()
const ATTACH_WINDOW_MS = 5 * 60_000

/** What a path left behind: the user holding NUMBER, its phone row, and the code the path's own flow sent. */
interface Put {
  userId: string
  phoneId: string
  code: string
}

interface Path {
  name: string
  claim: 'owner' | 'attachment'
  put: (p: TestProject) => Promise<Put>
}

// Codes live 10 minutes, longer than the attach window, so a lapsed window is what a late code meets.
const CODE = { expiration_minutes: 10 }

/** An existing user with a verified number of its own (as after a normal signup). */
async function existingUser(p: TestProject) {
  return login(p, HOLDER_PHONE)
}

const put = (sent: { userId: string; phoneId: string; code: string }): Put => ({
  userId: sent.userId,
  phoneId: sent.phoneId,
  code: sent.code,
})

/** Every path that puts a number on a user, and the claim the rule gives it. */
const PATHS: Path[] = [
  {
    name: 'login_or_create (mints a user for the number)',
    claim: 'owner',
    put: async (p) => put(await loginCode(p, NUMBER, CODE)),
  },
  {
    name: 'users.create (mints a user for the number)',
    claim: 'owner',
    put: async (p) => {
      const created = await callJson('POST', '/v1/users', { project: p, body: { phone_number: NUMBER } })
      expect(created.status).toBe(200)
      return put(await issueCode(p, { phone_number: NUMBER, ...CODE }, { path: 'send' }))
    },
  },
  {
    name: '/send with user_id (adds to an existing user)',
    claim: 'attachment',
    put: async (p) => {
      const user = await existingUser(p)
      return put(await issueCode(p, { phone_number: NUMBER, user_id: user.userId, ...CODE }, { path: 'send' }))
    },
  },
  {
    name: '/send with a session (adds to the session’s user)',
    claim: 'attachment',
    put: async (p) => {
      const user = await existingUser(p)
      return put(await issueCode(p, { phone_number: NUMBER, session_token: user.token, ...CODE }, { path: 'send' }))
    },
  },
  {
    name: 'exchange_primary_factor (replaces an existing user’s number)',
    claim: 'attachment',
    put: async (p) => {
      const user = await existingUser(p)
      const exchanged = await exchangeNumber(p, user.userId, { phone_number: NUMBER })
      expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200)
      return put(await issueCode(p, { phone_number: NUMBER, user_id: user.userId, ...CODE }, { path: 'send' }))
    },
  },
]

const numbersOf = async (p: TestProject, userId: string) =>
  ((await getUser(p, userId)).body.phone_numbers as { phone_number: string }[]).map((n) => n.phone_number)

describe.each(PATHS)('$name: $claim', ({ claim, put: putNumber }) => {
  const owner = claim === 'owner'

  it('its row is classified by the one rule, ownsNumber', async () => {
    const p = await project()
    const held = await putNumber(p)
    const row = await env.DB.prepare(`SELECT ${ownsNumber()} AS owns, verified FROM phones WHERE id = ?1`)
      .bind(held.phoneId)
      .first<{ owns: number; verified: number }>()
    expect(row).toEqual({ owns: owner ? 1 : 0, verified: 0 })
  })

  it(`login_or_create with the number ${owner ? 'logs in to the holder' : 'releases it and creates the real owner'}`, async () => {
    const p = await project()
    const held = await putNumber(p)
    const next = await loginCode(p, NUMBER)
    if (owner) {
      expect(next.body).toMatchObject({ user_id: held.userId, phone_id: held.phoneId, user_created: false })
      return
    }
    expect(next.body.user_created).toBe(true)
    expect(next.userId).not.toBe(held.userId)
    expect(await dbPhone(held.phoneId)).toBeNull()
    expectStytchError(
      await authenticate(p, { method_id: held.phoneId, code: held.code }),
      404,
      'phone_number_not_found',
    )
    expect(await numbersOf(p, held.userId)).not.toContain(NUMBER)
  })

  it(`users.create with the number ${owner ? 'is a duplicate' : 'releases it to the new user'}`, async () => {
    const p = await project()
    const held = await putNumber(p)
    const created = await callJson('POST', '/v1/users', { project: p, body: { phone_number: NUMBER } })
    if (owner) {
      expectStytchError(created, 409, 'duplicate_phone_number')
      return
    }
    expect(created.status).toBe(200)
    expect(await dbPhone(held.phoneId)).toBeNull()
    expect(await numbersOf(p, String(created.body.user_id))).toEqual([NUMBER])
  })

  it(`/send without a user ${owner ? 'reaches the holder' : 'finds no such number'}`, async () => {
    const p = await project()
    const held = await putNumber(p)
    const res = await send(p, { phone_number: NUMBER })
    if (owner) expect(res.body).toMatchObject({ user_id: held.userId, phone_id: held.phoneId })
    else expectStytchError(res, 404, 'phone_number_not_found')
  })

  it('another user can neither attach nor exchange to it, and changes nothing', async () => {
    const p = await project()
    const held = await putNumber(p)
    const before = await dbPhone(held.phoneId)
    const other = await loginCode(p, OTHER_PHONE)
    expectStytchError(await send(p, { phone_number: NUMBER, user_id: other.userId }), 409, 'duplicate_phone_number')
    expectStytchError(await exchangeNumber(p, other.userId, { phone_number: NUMBER }), 409, 'duplicate_phone_number')
    expect(await dbPhone(held.phoneId)).toEqual(before)
    expect(await numbersOf(p, other.userId)).toEqual([OTHER_PHONE])
  })

  it("the holder's own code verifies it on the holder", async () => {
    const p = await project()
    const held = await putNumber(p)
    const res = await authenticate(p, { method_id: held.phoneId, code: held.code })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    expect(res.body.user_id).toBe(held.userId)
    expect(await dbPhone(held.phoneId)).toMatchObject({ user_id: held.userId, verified: 1, attach_expires_at: null })
    expect(await numbersOf(p, held.userId)).toContain(NUMBER)
  })

  it(`after the attach window the holder's code ${owner ? 'still verifies it' : 'is void and the number released'}`, async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const p = await project()
    const held = await putNumber(p)
    vi.setSystemTime(T0 + ATTACH_WINDOW_MS + 1)
    const res = await authenticate(p, { method_id: held.phoneId, code: held.code })
    if (owner) {
      expect(res.status).toBe(200)
      return
    }
    expectStytchError(res, 401, 'unable_to_auth_otp_code')
    expect(await dbPhone(held.phoneId)).toBeNull()
    expect(await numbersOf(p, held.userId)).not.toContain(NUMBER)
  })
})

// Sources of the Worker, to show that no path writes a phone row except through the two builders
// the rule knows (a new path must reuse one of them, and so falls under the tests above).
const SOURCES = import.meta.glob('../src/**/*.ts', { query: '?raw', import: 'default', eager: true }) as Record<
  string,
  string
>

/** The exported functions of `source` whose body contains `pattern`, by name. */
function functionsWith(source: string, pattern: RegExp): string[] {
  const names: string[] = []
  const starts = [...source.matchAll(/^export function (\w+)/gm)]
  for (const [i, start] of starts.entries()) {
    const body = source.slice(start.index, starts[i + 1]?.index ?? source.length)
    if (pattern.test(body)) names.push(String(start[1]))
  }
  return names
}

describe('the claim rule has one place', () => {
  it('only src/db/phones.ts writes phone rows, through the minted, attach and verify builders', () => {
    expect(Object.keys(SOURCES).length).toBeGreaterThan(20)
    for (const [file, source] of Object.entries(SOURCES)) {
      // history-seed.ts bulk-writes the benchmark's users and phones through a route only the bench
      // entry serves (src/bench/entry.ts); no request of the production Worker reaches it.
      // shard-move.ts copies a project's rows to another shard exactly as the source holds them (its
      // one write of its own, a stand-in number that frees a unique value, is overwritten by the
      // copied row in the same transaction): it never decides who owns a number.
      if (['../src/db/phones.ts', '../src/db/history-seed.ts', '../src/db/shard-move.ts'].includes(file)) continue
      expect(source, file).not.toMatch(/INSERT\s+INTO\s+phones|UPDATE\s+phones/i)
    }
    const phones = SOURCES['../src/db/phones.ts'] ?? ''
    // A row is inserted by login_or_create / users.create (minted, an owner claim) or as an attachment.
    expect(functionsWith(phones, /INSERT\s+INTO\s+phones/i).sort()).toEqual([
      'attachStatements',
      'insertPhoneStatement',
    ])
    // Only a successful authenticate turns a row into a verified one with no window.
    expect(functionsWith(phones, /SET\s+verified\s*=\s*1|attach_expires_at\s*=\s*NULL/i)).toEqual([
      'verifyPhoneStatement',
    ])
  })
})
