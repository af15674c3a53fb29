// Session JWTs against the official `stytch` SDK, unmodified: its local verification
// (`sessions.authenticateJwtLocal`, jose's jwtVerify with the JWKS it fetches itself from
// /v1/sessions/jwks/<project_id>) accepts a fresh JWT from this service and rejects expired,
// tampered and other-project JWTs; `sessions.authenticateJwt` falls back to the API exactly as
// against Stytch. The service runs as `npm run dev` runs it (test/node/server.mjs). Part of
// `npm test` through `npm run test:node`.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { describe, it } from 'node:test'
import { Client, ClientError, StytchError } from 'stytch'
import { serveDuringTests } from './server.mjs'

const project = (name) => ({
  id: `project-test-${randomUUID()}`,
  secret: `secret-test-${name}-${randomUUID()}`,
  env: 'test',
})
const PROJECT = project('sdk-sessions')
const OTHER = project('sdk-sessions-other')
// Ports 8850-8899 are this test's (sdk-otp.test.mjs uses 8800-8849); 8787 stays the developer's.
const PORTS = [8850, 8899]
const SANDBOX_PHONE = '+10000000000'

let server
let client
let otherClient

serveDuringTests({ projects: [PROJECT, OTHER], ports: PORTS }, (s) => {
  server = s
  client = new Client({ project_id: PROJECT.id, secret: PROJECT.secret, env: server.baseUrl })
  otherClient = new Client({ project_id: OTHER.id, secret: OTHER.secret, env: server.baseUrl })
})

/** A new session for the sandbox user of `sdk`'s project, started through the SDK's OTP calls. */
async function startSession(sdk, extra = {}) {
  const sent = await sdk.otps.whatsapp.loginOrCreate({ phone_number: SANDBOX_PHONE })
  const auth = await sdk.otps.authenticate({
    method_id: sent.phone_id,
    code: '000000',
    session_duration_minutes: 60,
    ...extra,
  })
  assert.equal(auth.status_code, 200)
  assert.match(auth.session_jwt, /^eyJ/)
  return auth
}

/** `jwt` with its payload changed and the original signature kept. */
function tamper(jwt, change) {
  const [header, payload, signature] = jwt.split('.')
  const claims = change(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')))
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`
}

const rejectsLocally = (promise) =>
  assert.rejects(promise, (err) => {
    assert.ok(err instanceof ClientError, `expected the SDK's ClientError, got ${err}`)
    assert.equal(err.code, 'jwt_invalid')
    return true
  })

const rejectsRemotely = (promise, status, errorType) =>
  assert.rejects(promise, (err) => {
    assert.ok(err instanceof StytchError, `expected a StytchError, got ${err}`)
    assert.deepEqual([err.status_code, err.error_type], [status, errorType])
    return true
  })

describe('session JWTs and the official stytch SDK', () => {
  it('verifies a fresh JWT locally: session, user, factors and custom claims', async () => {
    const auth = await startSession(client, { session_custom_claims: { plan: 'pro', iss: 'ignored' } })
    const local = await client.sessions.authenticateJwtLocal({ session_jwt: auth.session_jwt })
    assert.equal(local.session_id, auth.session.session_id)
    assert.equal(local.user_id, auth.user_id)
    assert.deepEqual(local.custom_claims, { plan: 'pro' })
    assert.deepEqual(local.authentication_factors, auth.session.authentication_factors)
    assert.deepEqual(local.attributes, auth.session.attributes)
    assert.deepEqual(local.roles, auth.session.roles)
    assert.equal(local.started_at, auth.session.started_at)
    assert.equal(Date.parse(local.expires_at), Date.parse(auth.session.expires_at))
    // authenticateJwt takes the local path for it and hands the same JWT back.
    const viaJwt = await client.sessions.authenticateJwt({ session_jwt: auth.session_jwt })
    assert.equal(viaJwt.session_jwt, auth.session_jwt)
    assert.equal(viaJwt.session.session_id, auth.session.session_id)
  })

  it('publishes the JWKS the SDK reads, with the kid of the JWT', async () => {
    const auth = await startSession(client)
    const { keys } = await client.sessions.getJWKS({ project_id: PROJECT.id })
    const { kid } = JSON.parse(Buffer.from(auth.session_jwt.split('.')[0], 'base64url').toString('utf8'))
    assert.ok(keys.some((k) => k.kid === kid && k.kty === 'RSA' && k.alg === 'RS256' && k.use === 'sig'))
  })

  it('rejects an expired JWT locally; the API still refreshes it while the session lives', async () => {
    const auth = await startSession(client)
    const sixMinutesOn = new Date(Date.now() + 6 * 60_000)
    await rejectsLocally(
      client.sessions.authenticateJwtLocal({ session_jwt: auth.session_jwt, current_date: sixMinutesOn }),
    )
    // max_token_age_seconds 0 makes authenticateJwt ask the API (POST /v1/sessions/authenticate).
    const refreshed = await client.sessions.authenticateJwt({ session_jwt: auth.session_jwt, max_token_age_seconds: 0 })
    assert.equal(refreshed.session.session_id, auth.session.session_id)
    const again = await client.sessions.authenticateJwtLocal({ session_jwt: refreshed.session_jwt })
    assert.equal(again.session_id, auth.session.session_id)
  })

  it('rejects a tampered JWT locally and through the API fallback', async () => {
    const auth = await startSession(client, { session_custom_claims: { role: 'member' } })
    const tampered = [
      tamper(auth.session_jwt, (claims) => ({ ...claims, role: 'admin' })),
      tamper(auth.session_jwt, (claims) => ({ ...claims, exp: claims.exp + 3_600 })),
      tamper(auth.session_jwt, (claims) => ({ ...claims, sub: `user-test-${randomUUID()}` })),
    ]
    for (const jwt of tampered) {
      await rejectsLocally(client.sessions.authenticateJwtLocal({ session_jwt: jwt }))
      await rejectsRemotely(client.sessions.authenticateJwt({ session_jwt: jwt }), 404, 'session_not_found')
    }
  })

  it("rejects another project's JWT, locally and through the API fallback", async () => {
    const mine = await startSession(client)
    const theirs = await startSession(otherClient)
    await rejectsLocally(client.sessions.authenticateJwtLocal({ session_jwt: theirs.session_jwt }))
    await rejectsLocally(otherClient.sessions.authenticateJwtLocal({ session_jwt: mine.session_jwt }))
    await rejectsRemotely(
      client.sessions.authenticateJwt({ session_jwt: theirs.session_jwt }),
      404,
      'session_not_found',
    )
    await rejectsRemotely(
      otherClient.sessions.authenticate({ session_token: mine.session_token }),
      404,
      'session_not_found',
    )
    // Each still verifies in its own project.
    assert.equal(
      (await otherClient.sessions.authenticateJwtLocal({ session_jwt: theirs.session_jwt })).session_id,
      theirs.session.session_id,
    )
  })

  it('sessions.authenticate, get and revoke speak the wire format the SDK expects', async () => {
    const auth = await startSession(client)
    const byToken = await client.sessions.authenticate({
      session_token: auth.session_token,
      session_duration_minutes: 120,
    })
    assert.equal(byToken.status_code, 200)
    assert.equal(byToken.session_token, auth.session_token)
    assert.equal(byToken.user.user_id, auth.user_id)
    assert.ok(Date.parse(byToken.session.expires_at) > Date.parse(auth.session.expires_at))
    const listed = await client.sessions.get({ user_id: auth.user_id })
    assert.ok(listed.sessions.some((s) => s.session_id === auth.session.session_id))

    const revoked = await client.sessions.revoke({ session_id: auth.session.session_id })
    assert.equal(revoked.status_code, 200)
    await rejectsRemotely(client.sessions.authenticate({ session_token: auth.session_token }), 404, 'session_not_found')
    await rejectsRemotely(
      client.sessions.authenticateJwt({ session_jwt: byToken.session_jwt, max_token_age_seconds: 0 }),
      404,
      'session_not_found',
    )
  })
})
