// `npm run whatsapp:template` against a mocked Graph API (no network): the exact calls it makes,
// the template it defines, and the status it reports per locale.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { statusReport, syncTemplate, templateSettings, wranglerVars } from '../../scripts/whatsapp-template.mjs'

const TOKEN = 'EAAJB-test-token-0000'
const vars = wranglerVars(readFileSync('wrangler.toml', 'utf8'))
const settingsFor = (env = {}) =>
  templateSettings(vars, { WHATSAPP_ACCESS_TOKEN: TOKEN, WHATSAPP_BUSINESS_ACCOUNT_ID: '102290129340398', ...env })

/** A Graph API stand-in: records each call and answers from `replies` in order. */
function mockGraph(replies) {
  const calls = []
  const fetchFn = async (url, init) => {
    calls.push({ url, method: init.method, headers: init.headers, body: init.body ? JSON.parse(init.body) : null })
    const reply = replies.shift()
    if (!reply) throw new Error(`unexpected call ${init.method} ${url}`)
    return new Response(JSON.stringify(reply.body), { status: reply.status ?? 200 })
  }
  return { calls, fetchFn }
}

const listed = (statuses) => ({
  data: Object.entries(statuses).map(([language, status], i) => ({
    name: 'verification_code',
    language,
    status,
    id: String(1000 + i),
  })),
})

describe('npm run whatsapp:template', () => {
  it('reads the template settings from wrangler.toml', () => {
    const s = settingsFor()
    assert.equal(s.name, 'verification_code')
    assert.equal(s.graphVersion, 'v26.0')
    assert.deepEqual(s.languages, { en: 'en_US', es: 'es', fr: 'fr', 'pt-br': 'pt_BR' })
    assert.equal(s.oneTap, null)
  })

  it('upserts one copy-code template in the four languages, then reads back each status', async () => {
    const graph = mockGraph([
      { body: { data: [{ id: '1', status: 'PENDING', language: 'en_US' }] } },
      { body: listed({ en_US: 'APPROVED', es: 'APPROVED', fr: 'PENDING', pt_BR: 'APPROVED' }) },
    ])
    const rows = await syncTemplate(settingsFor(), { fetchFn: graph.fetchFn })

    assert.equal(graph.calls.length, 2)
    const [upsert, list] = graph.calls
    assert.equal(upsert.method, 'POST')
    assert.equal(upsert.url, 'https://graph.facebook.com/v26.0/102290129340398/upsert_message_templates')
    assert.equal(upsert.headers.Authorization, `Bearer ${TOKEN}`)
    assert.deepEqual(upsert.body, {
      name: 'verification_code',
      languages: ['en_US', 'es', 'fr', 'pt_BR'],
      category: 'AUTHENTICATION',
      message_send_ttl_seconds: 60,
      components: [
        { type: 'body', add_security_recommendation: true },
        { type: 'buttons', buttons: [{ type: 'otp', otp_type: 'copy_code' }] },
      ],
    })
    // No expiry footer: Meta would print one fixed number for codes of every lifetime.
    assert.ok(!upsert.body.components.some((c) => c.type === 'footer'))
    assert.equal(list.method, 'GET')
    assert.equal(
      list.url,
      'https://graph.facebook.com/v26.0/102290129340398/message_templates?name=verification_code&fields=name%2Clanguage%2Cstatus&limit=100',
    )
    assert.deepEqual(rows, [
      { locale: 'en', language: 'en_US', status: 'APPROVED' },
      { locale: 'es', language: 'es', status: 'APPROVED' },
      { locale: 'fr', language: 'fr', status: 'PENDING' },
      { locale: 'pt-br', language: 'pt_BR', status: 'APPROVED' },
    ])
    const report = statusReport(settingsFor(), rows)
    assert.equal(report.ok, true)
    assert.match(report.text, /^fr {6}fr {8}PENDING$/m)
    assert.match(report.text, /waiting for Meta's review: fr/)
  })

  it('builds a one-tap autofill button from the Android app settings', async () => {
    const graph = mockGraph([{ body: { data: [] } }, { body: listed({ en_US: 'APPROVED' }) }])
    const settings = settingsFor({
      WHATSAPP_ANDROID_PACKAGE_NAME: 'com.example.login',
      WHATSAPP_ANDROID_SIGNATURE_HASH: 'K8a/AINcGX7',
    })
    await syncTemplate(settings, { fetchFn: graph.fetchFn })
    assert.deepEqual(graph.calls[0].body.components[1], {
      type: 'buttons',
      buttons: [
        {
          type: 'otp',
          otp_type: 'one_tap',
          supported_apps: [{ package_name: 'com.example.login', signature_hash: 'K8a/AINcGX7' }],
        },
      ],
    })
  })

  it('reports a missing, rejected or paused language as unable to send, and --status changes nothing', async () => {
    const graph = mockGraph([
      {
        body: {
          data: [
            ...listed({ en_US: 'APPROVED', es: 'REJECTED', fr: 'PAUSED' }).data,
            // Another template whose name contains ours: not counted.
            { name: 'verification_code_old', language: 'pt_BR', status: 'APPROVED', id: '9' },
          ],
        },
      },
    ])
    const rows = await syncTemplate(settingsFor(), { fetchFn: graph.fetchFn, statusOnly: true })
    assert.equal(graph.calls.length, 1)
    assert.equal(graph.calls[0].method, 'GET')
    assert.deepEqual(
      rows.map((r) => r.status),
      ['APPROVED', 'REJECTED', 'PAUSED', 'MISSING'],
    )
    const report = statusReport(settingsFor(), rows)
    assert.equal(report.ok, false)
    assert.match(report.text, /cannot send codes in: es \(REJECTED\), fr \(PAUSED\), pt-br \(MISSING\)/)
  })

  it('stops at a Graph API error with Meta’s code, and never sends without a token or a valid account id', async () => {
    const graph = mockGraph([{ status: 401, body: { error: { code: 190, message: 'Invalid OAuth access token' } } }])
    await assert.rejects(syncTemplate(settingsFor(), { fetchFn: graph.fetchFn }), /\(#190\) Invalid OAuth access token/)
    assert.throws(() => templateSettings(vars, { WHATSAPP_BUSINESS_ACCOUNT_ID: '1' }), /WHATSAPP_ACCESS_TOKEN/)
    assert.throws(() => settingsFor({ WHATSAPP_BUSINESS_ACCOUNT_ID: '../x' }), /must be digits/)
    assert.throws(() => settingsFor({ WHATSAPP_ANDROID_PACKAGE_NAME: 'com.example.login' }), /needs both/)
  })
})
