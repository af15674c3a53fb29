import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import { changedTables, snapshot } from './fuzz-probe'
import { callJson, expectedUser, expectStytchError, issueCode, type TestProject } from './helpers'
import { authenticate, dbGate, dbPhone, exchangeNumber, getUser, loginCode, project, send } from './otp-helpers'
import { login, sessionsAuthenticate, sessionsList } from './session-helpers'

const PHONE = '+12025550170'
const OTHER = '+12025550171'
const THIRD = '+12025550172'
const T0 = new Date('2026-11-27T10:00:00Z').getTime()

const createUser = (p: TestProject, body: unknown) => callJson('POST', '/v1/users', { project: p, body })
const updateUser = (p: TestProject, ref: string, body: unknown) =>
  callJson('PUT', `/v1/users/${encodeURIComponent(ref)}`, { project: p, body })
const searchUsers = (p: TestProject, body: unknown) => callJson('POST', '/v1/users/search', { project: p, body })
const exchange = exchangeNumber
const deleteExternalId = (p: TestProject, ref: string) =>
  callJson('DELETE', `/v1/users/${encodeURIComponent(ref)}/external_id`, { project: p })

const byPhone = (phone: string) => ({
  query: { operator: 'AND', operands: [{ filter_name: 'phone_number', filter_value: [phone] }] },
})

/** Runs `request` and asserts that it changed no table (a refused request changes nothing). */
async function expectUnchanged<T>(request: () => Promise<T>): Promise<T> {
  const before = await snapshot()
  const result = await request()
  expect(changedTables(before, await snapshot())).toEqual({})
  return result
}

describe('POST /v1/users', () => {
  it('creates an active user with an unverified number, name, metadata and external id', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const p = await project()
    const res = await createUser(p, {
      phone_number: PHONE,
      name: { first_name: 'Ada', last_name: 'Lovelace' },
      trusted_metadata: { plan: 'pro', seats: 3, drop: null },
      untrusted_metadata: { theme: 'dark' },
      external_id: 'crm|42',
    })
    expect(res.status).toBe(200)
    const userId = String(res.body.user_id)
    const phoneId = String(res.body.phone_id)
    expect(res.body).toMatchObject({ email_id: '', status: 'active', status_code: 200 })
    const user = expectedUser({
      userId,
      phoneId,
      phoneNumber: PHONE,
      verified: false,
      createdAt: '2026-11-27T10:00:00Z',
      name: { first_name: 'Ada', last_name: 'Lovelace' },
      trustedMetadata: { plan: 'pro', seats: 3 },
      untrustedMetadata: { theme: 'dark' },
      externalId: 'crm|42',
    })
    expect(res.body.user).toEqual(user)
    expect((await getUser(p, userId)).body).toEqual({ ...user, request_id: expect.any(String), status_code: 200 })
    // The number logs in to this user, and the external id reads it.
    const login = await loginCode(p, PHONE)
    expect(login.body).toMatchObject({ user_id: userId, phone_id: phoneId, user_created: false })
    expect((await getUser(p, 'crm|42')).body.user_id).toBe(userId)
  })

  it('creates a pending user with create_user_as_pending; the first code makes it active', async () => {
    const p = await project()
    const res = await createUser(p, { phone_number: PHONE, create_user_as_pending: true })
    expect(res.body).toMatchObject({ status: 'pending', user: { status: 'pending' } })
    expect(res.body.user).not.toHaveProperty('external_id')
    const { code, phoneId } = await loginCode(p, PHONE)
    const auth = await authenticate(p, { method_id: phoneId, code })
    expect(auth.body.user).toMatchObject({ status: 'active', phone_numbers: [{ verified: true }] })
  })

  it('refuses a number someone has, a taken external id, and oversized metadata, changing nothing', async () => {
    const p = await project()
    await loginCode(p, PHONE)
    await createUser(p, { phone_number: OTHER, external_id: 'taken' })
    expectStytchError(
      await expectUnchanged(() => createUser(p, { phone_number: PHONE })),
      409,
      'duplicate_phone_number',
    )
    expectStytchError(
      await expectUnchanged(() => createUser(p, { phone_number: THIRD, external_id: 'taken' })),
      409,
      'duplicate_user_external_id',
    )
    const big = { blob: 'x'.repeat(4_100) }
    expectStytchError(
      await expectUnchanged(() => createUser(p, { phone_number: THIRD, trusted_metadata: big })),
      400,
      'metadata_too_large',
    )
    for (const [body, type] of [
      [{ phone_number: THIRD, trusted_metadata: [1] }, 'metadata_invalid_format'],
      [{ phone_number: THIRD, untrusted_metadata: 'x' }, 'metadata_invalid_format'],
      [{ phone_number: '2025550172' }, 'invalid_phone_number'],
      [{}, 'bad_request'],
      [{ phone_number: THIRD, email: 'a@example.com' }, 'bad_request'],
      [{ phone_number: THIRD, roles: ['admin'] }, 'bad_request'],
      [{ phone_number: THIRD, external_id: 'user-test-0000' }, 'bad_request'],
      [{ phone_number: THIRD, external_id: 'has space' }, 'bad_request'],
      [{ phone_number: THIRD, external_id: 'x'.repeat(129) }, 'bad_request'],
    ] as const) {
      expectStytchError(await expectUnchanged(() => createUser(p, body)), 400, type)
    }
  })

  it('takes a number whose only claim is an unverified attachment; the attacher loses it', async () => {
    const p = await project()
    const attacker = await loginCode(p, PHONE)
    const attached = await issueCode(p, { phone_number: OTHER, user_id: attacker.userId }, { path: 'send' })
    const res = await createUser(p, { phone_number: OTHER })
    expect(res.status).toBe(200)
    const victimId = String(res.body.user_id)
    expect(victimId).not.toBe(attacker.userId)
    expect(await dbPhone(attached.phoneId)).toBeNull()
    expect(await dbGate(attached.phoneId)).toBeNull()
    // The attachment's code is void, and the number now logs in to the created user only.
    expectStytchError(
      await authenticate(p, { method_id: attached.phoneId, code: attached.code }),
      404,
      'phone_number_not_found',
    )
    expect((await getUser(p, attacker.userId)).body.phone_numbers).toEqual([
      { phone_id: attacker.phoneId, phone_number: PHONE, verified: false },
    ])
    expect((await loginCode(p, OTHER)).userId).toBe(victimId)
  })

  it('counts against the new-users-per-hour limit as login_or_create does', async () => {
    const p = await project({ new_users_per_hour: 2 })
    await createUser(p, { phone_number: PHONE })
    await loginCode(p, OTHER)
    expectStytchError(await expectUnchanged(() => createUser(p, { phone_number: THIRD })), 429, 'too_many_requests')
  })

  it('does not take a verified number', async () => {
    const p = await project()
    const owner = await loginCode(p, PHONE)
    expect((await authenticate(p, { method_id: owner.phoneId, code: owner.code })).status).toBe(200)
    expectStytchError(
      await expectUnchanged(() => createUser(p, { phone_number: PHONE })),
      409,
      'duplicate_phone_number',
    )
  })
})

describe('PUT /v1/users/{user_id}', () => {
  it('sets name parts, merges both metadata objects (null removes a key) and sets the external id', async () => {
    const p = await project()
    const created = await createUser(p, {
      phone_number: PHONE,
      name: { first_name: 'Ada', middle_name: 'King' },
      trusted_metadata: { plan: 'free', keep: { a: 1 } },
    })
    const userId = String(created.body.user_id)
    const res = await updateUser(p, userId, {
      name: { last_name: 'Lovelace', middle_name: '' },
      trusted_metadata: { plan: 'pro', keep: { b: 2 } },
      untrusted_metadata: { theme: 'dark' },
      external_id: 'ada-1',
    })
    expect(res.status).toBe(200)
    expect(Object.keys(res.body).sort()).toEqual(
      ['crypto_wallets', 'emails', 'phone_numbers', 'request_id', 'status_code', 'user', 'user_id'].sort(),
    )
    expect(res.body.user).toMatchObject({
      name: { first_name: 'Ada', middle_name: '', last_name: 'Lovelace' },
      trusted_metadata: { plan: 'pro', keep: { a: 1, b: 2 } },
      untrusted_metadata: { theme: 'dark' },
      external_id: 'ada-1',
    })
    const removed = await updateUser(p, 'ada-1', { trusted_metadata: { keep: null } })
    expect((removed.body.user as { trusted_metadata: unknown }).trusted_metadata).toEqual({ plan: 'pro' })
    const read = await getUser(p, userId)
    expect(read.body).toMatchObject({ trusted_metadata: { plan: 'pro' }, untrusted_metadata: { theme: 'dark' } })
    // Changing the external id frees the old one.
    await updateUser(p, userId, { external_id: 'ada-2' })
    expectStytchError(await getUser(p, 'ada-1'), 404, 'user_not_found')
    expect((await getUser(p, 'ada-2')).body.user_id).toBe(userId)
  })

  it('refuses unknown users, taken external ids and a merge past 4 KB, changing nothing', async () => {
    const p = await project()
    const a = String((await createUser(p, { phone_number: PHONE, external_id: 'a' })).body.user_id)
    await createUser(p, { phone_number: OTHER, external_id: 'b' })
    await updateUser(p, a, { trusted_metadata: { one: 'x'.repeat(3_000) } })
    expectStytchError(
      await expectUnchanged(() => updateUser(p, `user-test-${crypto.randomUUID()}`, { name: { first_name: 'x' } })),
      404,
      'user_not_found',
    )
    expectStytchError(await expectUnchanged(() => updateUser(p, 'nobody', {})), 404, 'user_not_found')
    expectStytchError(
      await expectUnchanged(() => updateUser(p, a, { external_id: 'b', name: { first_name: 'x' } })),
      409,
      'duplicate_user_external_id',
    )
    expectStytchError(
      await expectUnchanged(() =>
        updateUser(p, a, { trusted_metadata: { two: 'y'.repeat(2_000) }, name: { first_name: 'x' } }),
      ),
      400,
      'metadata_too_large',
    )
    expectStytchError(await expectUnchanged(() => updateUser(p, a, { roles: ['admin'] })), 400, 'bad_request')
    expect((await getUser(p, a)).body).toMatchObject({ external_id: 'a', name: { first_name: '' } })
  })
})

describe('metadata nesting', () => {
  /** A metadata object whose deepest value sits `depth` levels down, the object itself being level 1. */
  const nested = (depth: number) => {
    let value: unknown = 1
    for (let i = 1; i < depth; i++) value = [value]
    return { deep: value }
  }

  it('refuses metadata nested deeper than 32 levels with 400 metadata_invalid_format, on create and update', async () => {
    const p = await project()
    const user = await createUser(p, { phone_number: PHONE, trusted_metadata: nested(32) })
    expect(user.status, JSON.stringify(user.body)).toBe(200)
    const userId = String(user.body.user_id)
    // 1,001 levels in about 2 KB, far under the size cap: SQLite's JSON functions stop at 1,000.
    expect(JSON.stringify(nested(1_001)).length).toBeLessThan(2_100)
    for (const depth of [33, 1_001]) {
      for (const field of ['trusted_metadata', 'untrusted_metadata']) {
        const created = await expectUnchanged(() => createUser(p, { phone_number: OTHER, [field]: nested(depth) }))
        expect(expectStytchError(created, 400, 'metadata_invalid_format').error_message).toMatch(/32 levels/)
        const updated = await expectUnchanged(() => updateUser(p, userId, { [field]: nested(depth) }))
        expectStytchError(updated, 400, 'metadata_invalid_format')
      }
    }
    const ok = await updateUser(p, userId, { untrusted_metadata: nested(32) })
    expect(ok.status, JSON.stringify(ok.body)).toBe(200)
    expect((await getUser(p, userId)).body).toMatchObject({
      trusted_metadata: nested(32),
      untrusted_metadata: nested(32),
    })
  })
})

describe('external ids wherever a user_id is accepted', () => {
  it('reads, updates, sends to, lists sessions of, removes and deletes a user through its external id', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    await updateUser(p, s.userId, { external_id: 'ext.1' })
    expect((await getUser(p, 'ext.1')).body.user_id).toBe(s.userId)
    const sent = await send(p, { phone_number: OTHER, user_id: 'ext.1' })
    expect(sent.body).toMatchObject({ user_id: s.userId })
    expect(await send(p, { phone_number: THIRD, user_id: 'ext.1', session_token: s.token })).toMatchObject({
      status: 200,
    })
    expect((await sessionsList(p, 'ext.1')).body.sessions).toHaveLength(1)
    expectStytchError(await send(p, { phone_number: THIRD, user_id: 'ext.unknown' }), 404, 'user_not_found')

    const removed = await deleteExternalId(p, 'ext.1')
    expect(removed.status).toBe(200)
    expect(Object.keys(removed.body).sort()).toEqual(['request_id', 'status_code', 'user', 'user_id'])
    expect(removed.body.user).not.toHaveProperty('external_id')
    expectStytchError(await getUser(p, 'ext.1'), 404, 'user_not_found')
    expectStytchError(await deleteExternalId(p, 'ext.1'), 404, 'user_not_found')

    await updateUser(p, s.userId, { external_id: 'ext.2' })
    expect((await callJson('DELETE', '/v1/users/ext.2', { project: p })).body.user_id).toBe(s.userId)
    expectStytchError(await getUser(p, s.userId), 404, 'user_not_found')
  })
})

describe('POST /v1/users/search', () => {
  it('finds exactly the user with a number, and pages with a cursor over more users than the limit', async () => {
    const p = await project()
    const ids: string[] = []
    for (let i = 0; i < 5; i++) {
      vi.useFakeTimers({ toFake: ['Date'] })
      vi.setSystemTime(T0 + i * 1_000)
      ids.push(String((await createUser(p, { phone_number: `+1202555018${i}` })).body.user_id))
    }
    vi.useRealTimers()
    const one = await searchUsers(p, byPhone('+12025550182'))
    expect(one.status).toBe(200)
    expect(one.body.results_metadata).toEqual({ next_cursor: null, total: 1 })
    expect((one.body.results as { user_id: string }[]).map((u) => u.user_id)).toEqual([ids[2]])

    const seen: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const page = await searchUsers(p, { limit: 2, cursor })
      expect(page.status).toBe(200)
      const meta = page.body.results_metadata as { next_cursor: string | null; total: number }
      expect(meta.total).toBe(5)
      seen.push(...(page.body.results as { user_id: string }[]).map((u) => u.user_id))
      cursor = meta.next_cursor
      pages++
    } while (cursor)
    expect(pages).toBe(3)
    expect(seen).toEqual(ids)
  })

  it('combines filters with AND and OR: phone_id, user_id, external id, status, phone_verified, created_at', async () => {
    const p = await project()
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const a = await loginCode(p, PHONE)
    expect((await authenticate(p, { method_id: a.phoneId, code: a.code })).status).toBe(200)
    vi.setSystemTime(T0 + 60_000)
    const b = await createUser(p, { phone_number: OTHER, create_user_as_pending: true, external_id: 'bee' })
    vi.setSystemTime(T0 + 120_000)
    const c = await createUser(p, { phone_number: THIRD })
    const [bId, cId] = [String(b.body.user_id), String(c.body.user_id)]
    const ids = async (operator: string, operands: unknown[]) => {
      const res = await searchUsers(p, { query: { operator, operands } })
      expect(res.status, JSON.stringify(res.body)).toBe(200)
      return (res.body.results as { user_id: string }[]).map((u) => u.user_id)
    }
    const iso = (ms: number) => new Date(ms).toISOString()
    expect(await ids('AND', [{ filter_name: 'phone_id', filter_value: [a.phoneId] }])).toEqual([a.userId])
    expect(await ids('AND', [{ filter_name: 'user_id', filter_value: [cId, 'bee'] }])).toEqual([bId, cId])
    expect(await ids('AND', [{ filter_name: 'status', filter_value: 'pending' }])).toEqual([bId])
    expect(await ids('AND', [{ filter_name: 'phone_verified', filter_value: true }])).toEqual([a.userId])
    expect(await ids('AND', [{ filter_name: 'phone_verified', filter_value: false }])).toEqual([bId, cId])
    expect(
      await ids('AND', [
        { filter_name: 'created_at_between', filter_value: { greater_than: iso(T0), less_than: iso(T0 + 120_000) } },
      ]),
    ).toEqual([bId])
    expect(await ids('AND', [{ filter_name: 'created_at_greater_than', filter_value: iso(T0) }])).toEqual([bId, cId])
    expect(await ids('AND', [{ filter_name: 'created_at_less_than', filter_value: iso(T0 + 60_000) }])).toEqual([
      a.userId,
    ])
    expect(
      await ids('AND', [
        { filter_name: 'status', filter_value: 'active' },
        { filter_name: 'phone_verified', filter_value: false },
      ]),
    ).toEqual([cId])
    expect(
      await ids('OR', [
        { filter_name: 'status', filter_value: 'pending' },
        { filter_name: 'phone_number', filter_value: [PHONE] },
      ]),
    ).toEqual([a.userId, bId])
    expect(await ids('AND', [])).toEqual([a.userId, bId, cId])
  })

  it('refuses bad limits, cursors and filters', async () => {
    const p = await project()
    for (const body of [
      { limit: 0 },
      { limit: 1_001 },
      { limit: 1.5 },
      { cursor: 'not-a-cursor' },
      { cursor: btoa('1.user-test-x') },
      { query: { operator: 'XOR', operands: [] } },
      { query: { operator: 'AND', operands: [{ filter_name: 'email_address', filter_value: ['a@b.c'] }] } },
      { query: { operator: 'AND', operands: [{ filter_name: 'status', filter_value: 'deleted' }] } },
      { query: { operator: 'AND', operands: [{ filter_name: 'phone_number', filter_value: [] }] } },
      { query: { operator: 'AND', operands: [{ filter_name: 'created_at_greater_than', filter_value: 'yesterday' }] } },
    ]) {
      expectStytchError(await searchUsers(p, body), 400, 'bad_request')
    }
    expect((await searchUsers(p, { limit: 1_000 })).status).toBe(200)
  })
})

describe('PUT /v1/users/{user_id}/exchange_primary_factor', () => {
  it('adds the new number as a pending exchange: a new unverified phone beside the old one', async () => {
    const p = await project()
    const old = await loginCode(p, PHONE)
    const res = await exchange(p, old.userId, { phone_number: OTHER })
    expect(res.status).toBe(200)
    expect(Object.keys(res.body).sort()).toEqual(['request_id', 'status_code', 'user', 'user_id'])
    const phones = (res.body.user as { phone_numbers: { phone_id: string }[] }).phone_numbers
    expect(phones).toEqual([
      { phone_id: old.phoneId, phone_number: PHONE, verified: false },
      { phone_id: expect.any(String), phone_number: OTHER, verified: false },
    ])
    expect(phones[1]?.phone_id).not.toBe(old.phoneId)
    expect(await dbPhone(phones[1]?.phone_id ?? '')).toMatchObject({ user_id: old.userId, verified: 0 })
    // Until the new number is proven, the old one and its code are the user's as before.
    expect(await dbGate(old.phoneId)).toMatchObject({ consumed_at: null })
    expect((await authenticate(p, { method_id: old.phoneId, code: old.code })).status).toBe(200)
    expectStytchError(await exchange(p, 'user-x', { phone_number: OTHER }), 404, 'user_not_found')
  })

  it('never takes a number another user has, and refuses users without exactly one number', async () => {
    const p = await project()
    const a = await loginCode(p, PHONE)
    const b = await loginCode(p, OTHER)
    expectStytchError(
      await expectUnchanged(() => exchange(p, a.userId, { phone_number: OTHER })),
      409,
      'duplicate_phone_number',
    )
    expect((await getUser(p, b.userId)).body.phone_numbers).toEqual([
      { phone_id: b.phoneId, phone_number: OTHER, verified: false },
    ])
    await issueCode(p, { phone_number: THIRD, user_id: a.userId }, { path: 'send' })
    expectStytchError(
      await expectUnchanged(() => exchange(p, a.userId, { phone_number: '+12025550173' })),
      400,
      'invalid_exchange_primary_factor_user',
    )
    for (const body of [{}, { email_address: 'a@example.com' }, { email_address: 'a@b.c', phone_number: THIRD }]) {
      expectStytchError(
        await expectUnchanged(() => exchange(p, b.userId, body)),
        400,
        'invalid_exchange_primary_factor_fields',
      )
    }
    expectStytchError(
      await expectUnchanged(() => exchange(p, b.userId, { phone_number: '12' })),
      400,
      'invalid_phone_number',
    )
    expectStytchError(
      await expectUnchanged(() => exchange(p, `user-test-${crypto.randomUUID()}`, { phone_number: THIRD })),
      404,
      'user_not_found',
    )
  })
})

describe('project isolation of the Users API', () => {
  it('another project cannot read, change, search, exchange or unlink a user, and external ids are per project', async () => {
    const p = await project()
    const q = await project()
    const a = await createUser(p, { phone_number: PHONE, external_id: 'shared', trusted_metadata: { k: 1 } })
    const userId = String(a.body.user_id)
    const before = await snapshot()
    expectStytchError(await getUser(q, 'shared'), 404, 'user_not_found')
    expectStytchError(await updateUser(q, userId, { name: { first_name: 'x' } }), 404, 'user_not_found')
    expectStytchError(await updateUser(q, 'shared', { trusted_metadata: { k: 2 } }), 404, 'user_not_found')
    expectStytchError(await exchange(q, userId, { phone_number: OTHER }), 404, 'user_not_found')
    expectStytchError(await deleteExternalId(q, userId), 404, 'user_not_found')
    expect((await searchUsers(q, byPhone(PHONE))).body.results_metadata).toEqual({ next_cursor: null, total: 0 })
    expect(
      (
        await searchUsers(q, {
          query: { operator: 'AND', operands: [{ filter_name: 'user_id', filter_value: [userId] }] },
        })
      ).body.results,
    ).toEqual([])
    // Only q's own search budget moved (its searches' rows read): nothing of p, nothing else.
    expect(changedTables(before, await snapshot())).toEqual({
      limit_counters: [expect.any(Number), expect.any(Number)],
    })
    const budgets = await env.DB.prepare(
      "SELECT DISTINCT project_id FROM limit_counters WHERE kind = 'search_rows_per_minute' AND project_id IN (?1, ?2)",
    )
      .bind(p.id, q.id)
      .all()
    expect(budgets.results).toEqual([{ project_id: q.id }])
    // The same external id and number in another project are that project's own.
    const mine = await createUser(q, { phone_number: PHONE, external_id: 'shared' })
    expect(mine.status).toBe(200)
    expect((await getUser(q, 'shared')).body.user_id).toBe(mine.body.user_id)
    expect((await getUser(p, 'shared')).body).toMatchObject({ user_id: userId, trusted_metadata: { k: 1 } })
  })
})

describe('session_token on every session reply', () => {
  it('is returned when the session is named by its JWT, and is kept only sealed', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    const byJwt = await sessionsAuthenticate(p, { session_jwt: s.jwt })
    expect(byJwt.body.session_token).toBe(s.token)
    const { code } = await loginCode(p, PHONE)
    const otp = await authenticate(p, { method_id: s.phoneId, code, session_jwt: s.jwt })
    expect(otp.body.session_token).toBe(s.token)
    const row = await env.DB.prepare('SELECT * FROM sessions WHERE id = ?1').bind(s.session.session_id).first()
    expect(JSON.stringify(row)).not.toContain(s.token)
    expect(row).toMatchObject({ token_iv: expect.any(String), token_ct: expect.any(String) })
  })

  it('opens under the previous SESSION_KEY_ENCRYPTION_KEY during a rotation', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    const rotated = {
      ...env,
      SESSION_KEY_ENCRYPTION_KEY: btoa('rotated-session-key-0123456789ab'),
      SESSION_KEY_ENCRYPTION_KEY_PREVIOUS: env.SESSION_KEY_ENCRYPTION_KEY,
    } as Env
    const res = await sessionsAuthenticate(p, { session_token: s.token }, { env: rotated })
    expect(res.status).toBe(200)
    const byJwt = await sessionsAuthenticate(p, { session_jwt: String(res.body.session_jwt) }, { env: rotated })
    expect(byJwt.body.session_token).toBe(s.token)
  })

  it('is empty for a session without a sealed token, which still authenticates by JWT', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    await env.DB.prepare('UPDATE sessions SET token_iv = NULL, token_ct = NULL WHERE id = ?1')
      .bind(s.session.session_id)
      .run()
    const res = await sessionsAuthenticate(p, { session_jwt: s.jwt })
    expect(res.status).toBe(200)
    expect(res.body.session_token).toBe('')
  })
})
