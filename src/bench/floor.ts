/**
 * The floor of `npm run profile`: a Worker with our bindings (the same wrangler.toml, started the same
 * way, with this file as its entry point) that answers the profile's three loads with the storage
 * round trips our stack requires and nothing else. No validation, no project, no crypto, no SQL that
 * reads or writes a table, no limits. What it costs per request is what the local runtime and its D1,
 * KV and Queues simulators charge for those round trips alone, so our Worker's cost above it is the
 * part our own code and SQL can still cut.
 *
 * Per request, as our Worker does:
 * - GET /health: nothing (the same reply).
 * - login_or_create: one D1 batch of 8 statements, then at once one KV write (a record of the size
 *   of ours, with a TTL) and one queue send (a job of the size of ours); its queue consumer runs one
 *   D1 batch to lease a queue batch and one of two statements to record it, then acks.
 * - authenticate: one KV read of the record login_or_create wrote, then one D1 batch of 4 statements.
 * Each D1 batch writes one row, as each of ours writes: a write transaction commits, a read does not.
 * Replies have our replies' fields, so the proxies in front carry as many bytes. GET /dev/whatsapp/outbox
 * answers every number with one message, so the profile's loads run unchanged; it is not measured.
 *
 * Never deployed: src/index.ts is the production entry point, and nothing there imports this file.
 */

const json = (body: unknown) => Response.json(body)

// A table of the floor's own in the bench server's fresh local database, created once per isolate.
let floorTable: Promise<unknown> | null = null

/**
 * A batch of `n` statements that writes one row and otherwise reads no table: the round trip, the
 * per-statement work and a write transaction's commit alone (each of our batches writes).
 */
async function trivialBatch(db: D1Database, n: number, value: string) {
  floorTable ??= db
    .prepare('CREATE TABLE IF NOT EXISTS bench_floor_writes (id TEXT PRIMARY KEY, value TEXT NOT NULL)')
    .run()
  await floorTable
  const write = db
    .prepare('INSERT INTO bench_floor_writes (id, value) VALUES (?1, ?2)')
    .bind(crypto.randomUUID(), value)
  const reads = Array.from({ length: n - 1 }, (_, i) => db.prepare('SELECT ?1 AS value, ?2 AS i').bind(value, i))
  return db.batch([write, ...reads])
}

// The sizes of ours: a KV record with its keyed hashes and a queue job with its sealed code.
const FILLER = 'x'.repeat(43)
const record = (codeId: string) => ({
  v: 1,
  code_id: codeId,
  mac: FILLER,
  expires_at: Date.now() + 600_000,
  ip_hash: null,
  ua_hash: null,
  country: 'US',
  needs: { attached: false, sms: false },
})

function user(userId: string, phoneId: string, phoneNumber: string) {
  return {
    user_id: userId,
    emails: [],
    status: 'active',
    phone_numbers: [{ phone_id: phoneId, phone_number: phoneNumber, verified: true }],
    webauthn_registrations: [],
    providers: [],
    totps: [],
    crypto_wallets: [],
    biometric_registrations: [],
    is_locked: false,
    roles: [],
    name: { first_name: '', middle_name: '', last_name: '' },
    created_at: new Date().toISOString(),
    trusted_metadata: {},
    untrusted_metadata: {},
  }
}

export default {
  async fetch(request, env) {
    const { pathname, searchParams } = new URL(request.url)
    const requestId = `request-id-test-${crypto.randomUUID()}`
    if (pathname === '/health') return json({ request_id: requestId, status: 'ok', status_code: 200 })
    if (pathname === '/dev/whatsapp/outbox') {
      const phoneNumber = searchParams.get('phone_number') ?? ''
      return json({ messages: [{ id: crypto.randomUUID(), phone_number: phoneNumber, code: '000000' }] })
    }
    if (request.method === 'POST' && pathname === '/v1/otps/whatsapp/login_or_create') {
      const { phone_number: phoneNumber } = await request.json<{ phone_number: string }>()
      const phoneId = `phone-number-test-${phoneNumber}`
      const codeId = crypto.randomUUID()
      await trivialBatch(env.DB, 8, phoneId)
      await Promise.all([
        env.OTP_KV.put(`otp:${phoneId}`, JSON.stringify(record(codeId)), { expirationTtl: 600 }),
        env.WHATSAPP_QUEUE.send(
          {
            v: 1,
            id: codeId,
            phone_id: phoneId,
            phone_number: phoneNumber,
            project_id: `project-test-${crypto.randomUUID()}`,
            locale: 'en',
            expires_at: Date.now() + 600_000,
            code: FILLER.repeat(2),
            channel: 'whatsapp',
            country: 'US',
          },
          { contentType: 'json' },
        ),
      ])
      return json({
        request_id: requestId,
        status_code: 200,
        user_id: `user-test-${crypto.randomUUID()}`,
        phone_id: phoneId,
        user_created: true,
      })
    }
    if (request.method === 'POST' && pathname === '/v1/otps/authenticate') {
      const { method_id: phoneId } = await request.json<{ method_id: string }>()
      await env.OTP_KV.get(`otp:${phoneId}`, 'json')
      await trivialBatch(env.DB, 4, phoneId)
      const userId = `user-test-${crypto.randomUUID()}`
      return json({
        request_id: requestId,
        status_code: 200,
        user_id: userId,
        method_id: phoneId,
        user: user(userId, phoneId, phoneId.slice('phone-number-test-'.length)),
        session_token: '',
        session_jwt: '',
        session: null,
        reset_sessions: false,
      })
    }
    return new Response(JSON.stringify({ status_code: 404, error_type: 'not_found' }), { status: 404 })
  },

  async queue(batch, env) {
    await trivialBatch(env.DB, 1, batch.queue)
    await trivialBatch(env.DB, 2, batch.queue)
    batch.ackAll()
  },
} satisfies ExportedHandler<Env>
