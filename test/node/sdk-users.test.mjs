// The Users API and session tokens against the official `stytch` SDK, unmodified: users.create,
// get, update, search / searchAll, exchangePrimaryFactor, deleteExternalId and delete, an
// external_id used wherever a user_id is, Stytch's errors surfacing as StytchError, and
// sessions.authenticate by JWT returning the session token the login returned. The service runs as
// `npm run dev` runs it (test/node/server.mjs). Part of `npm test` through `npm run test:node`.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { describe, it } from 'node:test'
import { Client, StytchError } from 'stytch'
import { serveDuringTests } from './server.mjs'

const PROJECT = {
  id: `project-test-${randomUUID()}`,
  secret: `secret-test-sdk-users-${randomUUID()}`,
  env: 'test',
}
// Ports 8900-8949 are this test's (sdk-otp uses 8800-8849, sdk-sessions 8850-8899); 8787 stays the developer's.
const PORTS = [8900, 8949]
const SANDBOX_PHONE = '+10000000000'

let server
let client

serveDuringTests({ projects: [PROJECT], ports: PORTS }, (s) => {
  server = s
  client = new Client({ project_id: PROJECT.id, secret: PROJECT.secret, env: server.baseUrl })
})

const rejectsWith = (promise, status, errorType) =>
  assert.rejects(promise, (err) => {
    assert.ok(err instanceof StytchError, `expected a StytchError, got ${err}`)
    assert.deepEqual([err.status_code, err.error_type], [status, errorType])
    return true
  })

describe('the Users API and the official stytch SDK', () => {
  it('users.create then users.get: name and number present', async () => {
    const created = await client.users.create({
      phone_number: '+12025550401',
      name: { first_name: 'Ada', last_name: 'Lovelace' },
    })
    assert.equal(created.status_code, 200)
    assert.equal(created.status, 'active')
    assert.match(created.user_id, /^user-test-/)
    const user = await client.users.get({ user_id: created.user_id })
    assert.deepEqual(user.name, { first_name: 'Ada', middle_name: '', last_name: 'Lovelace' })
    assert.deepEqual(user.phone_numbers, [
      { phone_id: created.phone_id, phone_number: '+12025550401', verified: false },
    ])
  })

  it('users.update of the name and both metadata objects, then users.get', async () => {
    const { user_id } = await client.users.create({ phone_number: '+12025550402' })
    const updated = await client.users.update({
      user_id,
      name: { first_name: 'Grace', middle_name: 'B', last_name: 'Hopper' },
      trusted_metadata: { plan: 'pro', seats: 5 },
      untrusted_metadata: { theme: 'dark' },
    })
    assert.equal(updated.user_id, user_id)
    const user = await client.users.get({ user_id })
    assert.deepEqual(user.name, { first_name: 'Grace', middle_name: 'B', last_name: 'Hopper' })
    assert.deepEqual(user.trusted_metadata, { plan: 'pro', seats: 5 })
    assert.deepEqual(user.untrusted_metadata, { theme: 'dark' })
  })

  it('users.search by phone number finds exactly that user; searchAll pages with a cursor', async () => {
    const ids = []
    for (let i = 0; i < 5; i++) ids.push((await client.users.create({ phone_number: `+1202555041${i}` })).user_id)
    const found = await client.users.search({
      query: { operator: 'AND', operands: [{ filter_name: 'phone_number', filter_value: ['+12025550413'] }] },
    })
    assert.deepEqual(
      found.results.map((u) => u.user_id),
      [ids[3]],
    )
    assert.equal(found.results_metadata.total, 1)

    const query = {
      operator: 'OR',
      operands: [{ filter_name: 'phone_number', filter_value: ids.map((_, i) => `+1202555041${i}`) }],
    }
    const first = await client.users.search({ limit: 2, query })
    assert.equal(first.results.length, 2)
    assert.equal(first.results_metadata.total, 5)
    assert.ok(first.results_metadata.next_cursor)
    const pages = []
    for await (const page of client.users.searchAll({ limit: 2, query })) pages.push(page.map((u) => u.user_id))
    assert.deepEqual(
      pages.map((p) => p.length),
      [2, 2, 1],
    )
    assert.deepEqual(pages.flat().sort(), [...ids].sort())
  })

  it('a user created with an external_id is read, updated, exchanged and deleted through it', async () => {
    const external = `crm-${randomUUID()}`
    const created = await client.users.create({ phone_number: '+12025550420', external_id: external })
    assert.equal(created.user.external_id, external)
    assert.equal((await client.users.get({ user_id: external })).user_id, created.user_id)
    await client.users.update({ user_id: external, untrusted_metadata: { via: 'external_id' } })
    assert.deepEqual((await client.users.get({ user_id: created.user_id })).untrusted_metadata, { via: 'external_id' })
    const exchanged = await client.users.exchangePrimaryFactor({ user_id: external, phone_number: '+12025550421' })
    // The new number is pending beside the old one until the user authenticates a code on it.
    assert.deepEqual(
      exchanged.user.phone_numbers.map((p) => [p.phone_number, p.verified]),
      [
        ['+12025550420', false],
        ['+12025550421', false],
      ],
    )
    await rejectsWith(
      client.users.create({ phone_number: '+12025550422', external_id: external }),
      409,
      'duplicate_user_external_id',
    )
    const deleted = await client.users.delete({ user_id: external })
    assert.equal(deleted.user_id, created.user_id)
    await rejectsWith(client.users.get({ user_id: created.user_id }), 404, 'user_not_found')
  })

  it('deleteExternalId removes it; the user stays readable by its user_id', async () => {
    const external = `tmp-${randomUUID()}`
    const created = await client.users.create({ phone_number: '+12025550430', external_id: external })
    const res = await client.users.deleteExternalId({ user_id: external })
    assert.equal(res.user_id, created.user_id)
    assert.equal(res.user.external_id, undefined)
    await rejectsWith(client.users.get({ user_id: external }), 404, 'user_not_found')
    assert.equal((await client.users.get({ user_id: created.user_id })).user_id, created.user_id)
  })

  it("surfaces Stytch's errors, and a refused request changes nothing", async () => {
    await rejectsWith(client.users.get({ user_id: `user-test-${randomUUID()}` }), 404, 'user_not_found')
    const { user_id } = await client.users.create({ phone_number: '+12025550440', trusted_metadata: { keep: 1 } })
    await rejectsWith(
      client.users.update({ user_id, trusted_metadata: { blob: 'x'.repeat(5_000) }, name: { first_name: 'No' } }),
      400,
      'metadata_too_large',
    )
    await rejectsWith(client.users.create({ phone_number: '+12025550440' }), 409, 'duplicate_phone_number')
    const user = await client.users.get({ user_id })
    assert.deepEqual(user.trusted_metadata, { keep: 1 })
    assert.equal(user.name.first_name, '')
  })
})

describe('session_token on every session reply', () => {
  it('sessions.authenticate({ session_jwt }) returns the session_token the login returned', async () => {
    const sent = await client.otps.whatsapp.loginOrCreate({ phone_number: SANDBOX_PHONE })
    const login = await client.otps.authenticate({
      method_id: sent.phone_id,
      code: '000000',
      session_duration_minutes: 60,
    })
    assert.match(login.session_token, /^[A-Za-z0-9_-]{44}$/)
    const byJwt = await client.sessions.authenticate({ session_jwt: login.session_jwt })
    assert.equal(byJwt.session_token, login.session_token)
    assert.equal(byJwt.session.session_id, login.session.session_id)
  })
})
