// `npm run stats` and `npm run deliveries -- --failed` on a local state seeded by a short run: the
// service started as `npm run dev` starts it, the project on the second D1 shard, codes sent to eight numbers in three countries (one by
// SMS, one to the number .dev.vars lists as not on WhatsApp, which falls back to SMS), five logins
// with the delivered codes and one wrong guess, Meta's status webhooks (signed) marking deliveries
// delivered, read and failed, and a trip of the SMS pumping breaker. The printed counts must equal
// what the run did.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHmac, randomUUID } from 'node:crypto'
import { readFileSync, rmSync } from 'node:fs'
import { after, describe, it } from 'node:test'
import { d1Query, serveDuringTests } from './server.mjs'

// On the second D1 shard: the scripts find its rows there, as the Worker puts them.
const PROJECT = {
  id: `project-test-${randomUUID()}`,
  secret: `secret-test-stats-${randomUUID()}`,
  env: 'test',
  settings: { ...JSON.parse(readFileSync('test/lenient-limits.json', 'utf8')), whatsapp_fallback: 'sms' },
  shard: 1,
}
// This test's ports (web-login-browser's example takes 8975-8999); the SDK tests, the load test and
// the developer's own server use others.
const PORTS = [8950, 8974]
const OUTBOX_TIMEOUT_MS = 60_000

// What the run does to each number: the seeded truth the figures are checked against.
const NUMBERS = {
  us1: { phone: '+12025550141', country: 'US', login: true, status: 'delivered' },
  us2: { phone: '+12025550142', country: 'US', login: true, status: 'read' },
  us3: { phone: '+12025550143', country: 'US', login: false, status: null },
  us4: { phone: '+12025550144', country: 'US', login: true, status: null, channel: 'sms' },
  // Not on WhatsApp (CONSOLE_WHATSAPP_UNREACHABLE): its code goes out by SMS.
  us5: { phone: '+12025550199', country: 'US', login: true, status: null },
  gb1: { phone: '+447400123451', country: 'GB', login: true, status: 'delivered' },
  // 131026 too, but SMS may not go to GB (sms_allowed_countries): no fallback.
  gb2: { phone: '+447400123452', country: 'GB', login: false, status: 'failed', error: 131026 },
  br1: { phone: '+5511987654321', country: 'BR', login: false, status: 'failed', error: 131042 },
}

let server
/** The stopped server's state directory, which the scripts read; removed after the tests. */
let state
after(() => {
  if (state) rmSync(state, { recursive: true, force: true })
})
const phoneIds = {}
const breaker = {}

const basic = `Basic ${Buffer.from(`${PROJECT.id}:${PROJECT.secret}`).toString('base64')}`

async function post(path, body, headers = {}) {
  return fetch(new URL(path, server.baseUrl), {
    method: 'POST',
    headers: { authorization: basic, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
}

async function deliveredCode(phone) {
  const deadline = Date.now() + OUTBOX_TIMEOUT_MS
  for (;;) {
    const res = await fetch(new URL(`/dev/whatsapp/outbox?phone_number=${encodeURIComponent(phone)}`, server.baseUrl), {
      headers: { authorization: basic },
    })
    assert.equal(res.status, 200)
    const { messages } = await res.json()
    if (messages.length > 0) return messages[0].code
    if (Date.now() > deadline) throw new Error(`no message for ${phone} within ${OUTBOX_TIMEOUT_MS} ms`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

const appSecret = () => /^WHATSAPP_APP_SECRET=(.*)$/m.exec(readFileSync('.dev.vars', 'utf8'))?.[1] ?? ''

async function webhook(statuses) {
  const body = JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: '1', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', statuses } }] }],
  })
  const signature = `sha256=${createHmac('sha256', appSecret()).update(body).digest('hex')}`
  const res = await fetch(new URL('/v1/webhooks/whatsapp', server.baseUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature },
    body,
  })
  assert.equal(res.status, 200)
}

/** Waits until no delivery of PROJECT is still queued or being sent. */
async function settled() {
  const deadline = Date.now() + OUTBOX_TIMEOUT_MS
  for (;;) {
    const [row] = await d1Query(
      server.baseUrl,
      `SELECT COUNT(*) AS open FROM deliveries WHERE project_id = ?1 AND status IN ('queued', 'sending')`,
      [PROJECT.id],
      'DB_1',
    )
    if (row?.open === 0) return
    if (Date.now() > deadline) throw new Error(`${row?.open} deliveries still open after ${OUTBOX_TIMEOUT_MS} ms`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

function run(script, args) {
  return execFileSync(process.execPath, [script, '--persist-to', server.persistTo, '--project', PROJECT.id, ...args], {
    encoding: 'utf8',
    env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' },
  })
}

// Seeding sends, logs in and reports statuses through the running Worker, so it gets more time. A
// server of its own: the scripts read its state directory with `wrangler d1 execute`, which must
// not meet another test's writes to the database file.
serveDuringTests(
  { projects: [PROJECT], ports: PORTS, own: true },
  async (s) => {
    server = s
    for (const [key, n] of Object.entries(NUMBERS)) {
      const res = await post(`/v1/otps/${n.channel ?? 'whatsapp'}/login_or_create`, { phone_number: n.phone })
      assert.equal(res.status, 200)
      phoneIds[key] = (await res.json()).phone_id
    }
    for (const [key, n] of Object.entries(NUMBERS)) {
      const code = await deliveredCode(n.phone)
      if (n.login) {
        const res = await post('/v1/otps/authenticate', { method_id: phoneIds[key], code })
        assert.equal(res.status, 200)
      }
    }
    // A wrong guess counts nothing here (the code stays unused).
    const wrong = await post('/v1/otps/authenticate', { method_id: phoneIds.br1, code: '000000' })
    assert.notEqual(wrong.status, 200)
    // The console provider has no Meta message id; give each delivery one, then let Meta report.
    await d1Query(
      server.baseUrl,
      `UPDATE deliveries SET wamid = 'wamid.stats.' || phone_id WHERE project_id = ?1`,
      [PROJECT.id],
      'DB_1',
    )
    const statuses = []
    for (const [key, n] of Object.entries(NUMBERS)) {
      if (!n.status) continue
      const id = `wamid.stats.${phoneIds[key]}`
      if (n.status === 'read') statuses.push({ id, status: 'delivered', timestamp: '1' })
      statuses.push({ id, status: n.status, timestamp: '2', ...(n.error ? { errors: [{ code: n.error }] } : {}) })
    }
    await webhook(statuses)
    // A trip of the SMS pumping breaker, as the Worker records it (test/sms-breaker.test.ts shows a
    // real one writes this row): paused from 10 minutes ago for an hour.
    const trippedAt = Date.now() - 10 * 60_000
    await d1Query(
      server.baseUrl,
      `INSERT INTO limit_counters (project_id, kind, subject, bucket, n, expires_at)
        VALUES (?1, 'sms_breaker', 'BR', ?2, 1, ?3)`,
      [PROJECT.id, trippedAt, trippedAt + 2 * 3_600_000],
      'DB_1',
    )
    breaker.trippedAt = new Date(trippedAt).toISOString()
    breaker.pausedUntil = new Date(trippedAt + 3_600_000).toISOString()
    // Everything the run set off has settled (no delivery still queued or being sent, fallbacks
    // included), then the server stops: the scripts read its state directory with `wrangler d1
    // execute`, which can fail with SQLITE_BUSY if the server writes the database file meanwhile.
    await settled()
    state = server.persistTo
    await server.stop({ keepState: true })
  },
  { timeout: 300_000 },
)

describe('npm run stats / npm run deliveries on a seeded local state', () => {
  it('prints per-country counts equal to the seeded truth', { timeout: 120_000 }, () => {
    const { days, countries } = JSON.parse(run('scripts/stats.mjs', ['--json', '--days', '1']))
    assert.equal(days, 1)
    const by = Object.fromEntries(countries.map((c) => [c.country, c]))
    assert.deepEqual(
      countries.map((c) => c.country),
      ['US', 'GB', 'BR', 'TOTAL'],
    )
    const counts = (c) => ({ expired: 0, sms: 0, fallbacks: 0, fallbacks_sent: 0, failed_by_reason: {}, ...c })
    const expected = {
      US: counts({
        codes: 5,
        sent: 5,
        delivered: 2,
        read: 1,
        failed: 1,
        failed_by_reason: { 131026: 1 },
        sms: 1,
        fallbacks: 1,
        fallbacks_sent: 1,
        authenticated: 4,
      }),
      GB: counts({
        codes: 2,
        sent: 2,
        delivered: 1,
        read: 0,
        failed: 1,
        failed_by_reason: { 131026: 1 },
        authenticated: 1,
      }),
      BR: counts({
        codes: 1,
        sent: 1,
        delivered: 0,
        read: 0,
        failed: 1,
        failed_by_reason: { 131042: 1 },
        authenticated: 0,
      }),
      TOTAL: counts({
        codes: 8,
        sent: 8,
        delivered: 3,
        read: 1,
        failed: 3,
        failed_by_reason: { 131026: 2, 131042: 1 },
        sms: 1,
        fallbacks: 1,
        fallbacks_sent: 1,
        authenticated: 5,
      }),
    }
    for (const [country, want] of Object.entries(expected)) {
      const { conversion, median_seconds_to_authenticate: median, country: _c, ...rest } = by[country]
      assert.deepEqual(rest, want, country)
      assert.equal(conversion, want.authenticated / want.codes, `${country} conversion`)
      if (want.authenticated === 0) assert.equal(median, null)
      else assert.ok(median > 0 && median < 300, `${country} median ${median}`)
    }
    const { sms_breaker: trips } = JSON.parse(run('scripts/stats.mjs', ['--json', '--days', '1']))
    assert.deepEqual(trips, [
      {
        project_id: PROJECT.id,
        country: 'BR',
        tripped_at: breaker.trippedAt,
        paused_until: breaker.pausedUntil,
        paused: true,
      },
    ])

    const text = run('scripts/stats.mjs', ['--days', '1'])
    assert.match(text, /^US\s+5\s+5\s+2\s+1\s+1\s+0\s+1\s+1\s+4\s+80\.0%\s+[0-9.]+ s\s+131026×1$/m)
    assert.match(text, /^BR\s+1\s+1\s+0\s+0\s+1\s+0\s+0\s+0\s+0\s+0\.0%\s+-\s+131042×1$/m)
    assert.match(text, /^TOTAL\s+8\s+8\s+3\s+1\s+3\s+0\s+1\s+1\s+5\s+62\.5%/m)
    assert.ok(text.includes(`BR: SMS paused until ${breaker.pausedUntil} (breaker tripped ${breaker.trippedAt}`), text)
  })

  it('lists the failed deliveries with masked numbers, Meta’s error and attempts', { timeout: 120_000 }, () => {
    const { deliveries } = JSON.parse(run('scripts/deliveries.mjs', ['--failed', '--json']))
    const got = deliveries
      .map((d) => [d.phone, d.country, d.channel, d.status, d.error_code, d.detail, d.attempts, d.chain])
      .sort()
    assert.deepEqual(got, [
      [
        '+1 ••••••••99',
        'US',
        'whatsapp',
        'failed',
        131026,
        'meta_status_failed',
        1,
        'whatsapp failed 131026 → sms sent',
      ],
      ['+44 ••••••••52', 'GB', 'whatsapp', 'failed', 131026, 'meta_status_failed', 1, null],
      ['+55 •••••••••21', 'BR', 'whatsapp', 'failed', 131042, 'meta_status_failed', 1, null],
    ])
    const text = run('scripts/deliveries.mjs', ['--failed'])
    for (const n of Object.values(NUMBERS)) {
      assert.ok(!text.includes(n.phone) && !text.includes(n.phone.slice(1)), `${n.phone} printed unmasked`)
    }
    assert.match(text, /\+44 ••••••••52\s+GB\s+whatsapp\s+failed\s+131026\s+meta_status_failed\s+1\s+-/)
    assert.match(
      text,
      /\+1 ••••••••99\s+US\s+whatsapp\s+failed\s+131026\s+meta_status_failed\s+1\s+whatsapp failed 131026 → sms sent/,
    )
  })
})
