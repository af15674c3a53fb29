// Creates or updates the WhatsApp AUTHENTICATION template in every configured language through the
// Graph API, then reports each locale's approval status.
//
//   WHATSAPP_ACCESS_TOKEN=… WHATSAPP_BUSINESS_ACCOUNT_ID=… npm run whatsapp:template
//   npm run whatsapp:template -- --status          # only report, change nothing
//   npm run whatsapp:template -- --waba-id 1234567890
//
// Settings come from wrangler.toml [vars] (WHATSAPP_GRAPH_VERSION, WHATSAPP_TEMPLATE_NAME,
// WHATSAPP_TEMPLATE_LANGUAGES, and for one-tap autofill on Android WHATSAPP_ANDROID_PACKAGE_NAME and
// WHATSAPP_ANDROID_SIGNATURE_HASH); a variable of the same name in the environment overrides it.
// The token is read from the environment only, never from a flag (shell history). The template's
// content (no expiry footer, a time-to-live of the shortest code lifetime) is defined once in
// src/whatsapp/template.ts, which this script imports as is.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { MESSAGE_TTL_SECONDS, templateUpsertBody } from '../src/whatsapp/template.ts'

export const GRAPH_API_ORIGIN = 'https://graph.facebook.com'

const DEFAULT_LANGUAGES = { en: 'en_US', es: 'es', fr: 'fr', 'pt-br': 'pt_BR' }

/** The `KEY = "value"` / `KEY = 'value'` lines of wrangler.toml's [vars] table (all this script needs). */
export function wranglerVars(text) {
  const vars = {}
  let inVars = false
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line.startsWith('[')) {
      inVars = line === '[vars]'
      continue
    }
    const match = inVars ? /^([A-Z0-9_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)')/.exec(line) : null
    if (match) vars[match[1]] = match[2] !== undefined ? JSON.parse(`"${match[2]}"`) : match[3]
  }
  return vars
}

/** Checked settings, or throws an Error naming the setting (never its value). */
export function templateSettings(vars, env, flags = {}) {
  const get = (name) => (env[name] ?? vars[name] ?? '').trim()
  const accessToken = get('WHATSAPP_ACCESS_TOKEN')
  if (!accessToken) throw new Error('WHATSAPP_ACCESS_TOKEN is not set in the environment')
  const wabaId = (flags['waba-id'] ?? get('WHATSAPP_BUSINESS_ACCOUNT_ID')).trim()
  if (!/^[0-9]{1,32}$/.test(wabaId)) {
    throw new Error('the WhatsApp Business Account id (--waba-id or WHATSAPP_BUSINESS_ACCOUNT_ID) must be digits')
  }
  const graphVersion = get('WHATSAPP_GRAPH_VERSION') || 'v26.0'
  if (!/^v[0-9]{1,3}\.[0-9]{1,2}$/.test(graphVersion)) throw new Error('WHATSAPP_GRAPH_VERSION must look like v26.0')
  const name = get('WHATSAPP_TEMPLATE_NAME') || 'verification_code'
  if (!/^[a-z0-9_]{1,512}$/.test(name)) {
    throw new Error('WHATSAPP_TEMPLATE_NAME must be lowercase letters, digits and underscores')
  }
  let languages = DEFAULT_LANGUAGES
  const rawLanguages = get('WHATSAPP_TEMPLATE_LANGUAGES')
  if (rawLanguages) {
    try {
      languages = { ...DEFAULT_LANGUAGES, ...JSON.parse(rawLanguages) }
    } catch {
      throw new Error('WHATSAPP_TEMPLATE_LANGUAGES must be a JSON object like {"en":"en_US"}')
    }
  }
  for (const language of Object.values(languages)) {
    if (typeof language !== 'string' || !/^[a-z]{2,3}(_[A-Z][A-Za-z]{1,3})?$/.test(language)) {
      throw new Error('WHATSAPP_TEMPLATE_LANGUAGES values must be Meta language codes like en_US or pt_BR')
    }
  }
  const packageName = get('WHATSAPP_ANDROID_PACKAGE_NAME')
  const signatureHash = get('WHATSAPP_ANDROID_SIGNATURE_HASH')
  if (Boolean(packageName) !== Boolean(signatureHash)) {
    throw new Error('one-tap autofill needs both WHATSAPP_ANDROID_PACKAGE_NAME and WHATSAPP_ANDROID_SIGNATURE_HASH')
  }
  if (packageName && !/^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$/.test(packageName)) {
    throw new Error('WHATSAPP_ANDROID_PACKAGE_NAME must be an Android package name like com.example.app')
  }
  if (signatureHash && !/^[A-Za-z0-9+/]{11}$/.test(signatureHash)) {
    throw new Error('WHATSAPP_ANDROID_SIGNATURE_HASH must be the 11-character app signature hash')
  }
  const oneTap = packageName ? { packageName, signatureHash } : null
  return { accessToken, wabaId, graphVersion, name, languages, oneTap }
}

// Statuses after which codes in that language go out (or will once Meta's review ends).
const USABLE = new Set(['APPROVED'])
const WAITING = new Set(['PENDING', 'IN_APPEAL'])

async function graph(fetchFn, settings, method, path, body) {
  const url = `${GRAPH_API_ORIGIN}/${settings.graphVersion}/${path}`
  const res = await fetchFn(url, {
    method,
    headers: {
      Authorization: `Bearer ${settings.accessToken}`,
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    ...(body ? { body: JSON.stringify(body) } : {}),
  })
  const text = await res.text()
  let json
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  if (!res.ok) {
    const code = json?.error?.code
    const message = typeof json?.error?.message === 'string' ? json.error.message : `HTTP ${res.status}`
    throw new Error(
      `Graph API ${method} ${path.split('?')[0]} failed: ${code === undefined ? '' : `(#${code}) `}${message}`,
    )
  }
  return json
}

/**
 * Upserts the template (unless `statusOnly`) and reads back every language's status. Returns one row
 * per locale: `{ locale, language, status }`, status `MISSING` when Meta has no template in that
 * language. `fetchFn` is the Graph API transport (tests pass a mock).
 */
export async function syncTemplate(settings, { fetchFn = fetch, statusOnly = false } = {}) {
  const languages = [...new Set(Object.values(settings.languages))]
  if (!statusOnly) {
    const body = templateUpsertBody(settings.name, languages, settings.oneTap)
    await graph(fetchFn, settings, 'POST', `${settings.wabaId}/upsert_message_templates`, body)
  }
  const query = new URLSearchParams({ name: settings.name, fields: 'name,language,status', limit: '100' })
  const listed = await graph(fetchFn, settings, 'GET', `${settings.wabaId}/message_templates?${query}`)
  const status = new Map()
  for (const t of Array.isArray(listed?.data) ? listed.data : []) {
    // Meta's name filter also matches longer names; only this exact template counts.
    if (t?.name === settings.name && typeof t.language === 'string') status.set(t.language, String(t.status))
  }
  return Object.entries(settings.languages).map(([locale, language]) => ({
    locale,
    language,
    status: status.get(language) ?? 'MISSING',
  }))
}

/** The report printed for `rows`, and whether every locale can send codes (approved). */
export function statusReport(settings, rows) {
  const lines = [
    `template ${settings.name} (AUTHENTICATION, ${settings.oneTap ? 'one-tap autofill' : 'copy code'}, ` +
      `no expiry footer, message_send_ttl_seconds ${MESSAGE_TTL_SECONDS})`,
    '',
    `${'locale'.padEnd(8)}${'language'.padEnd(10)}status`,
    ...rows.map((r) => `${r.locale.padEnd(8)}${r.language.padEnd(10)}${r.status}`),
  ]
  const waiting = rows.filter((r) => WAITING.has(r.status))
  const broken = rows.filter((r) => !USABLE.has(r.status) && !WAITING.has(r.status))
  if (waiting.length > 0) lines.push('', `waiting for Meta's review: ${waiting.map((r) => r.locale).join(', ')}`)
  if (broken.length > 0) {
    lines.push('', `cannot send codes in: ${broken.map((r) => `${r.locale} (${r.status})`).join(', ')}`)
  }
  return { text: lines.join('\n'), ok: broken.length === 0 }
}

async function main() {
  const { values } = parseArgs({
    options: { status: { type: 'boolean', default: false }, 'waba-id': { type: 'string' } },
  })
  let settings
  try {
    settings = templateSettings(wranglerVars(readFileSync('wrangler.toml', 'utf8')), process.env, values)
  } catch (err) {
    console.error(`error: ${err.message}`)
    process.exit(2)
  }
  try {
    const rows = await syncTemplate(settings, { statusOnly: values.status })
    const report = statusReport(settings, rows)
    console.log(report.text)
    process.exit(report.ok ? 0 : 1)
  } catch (err) {
    console.error(`error: ${err.message}`)
    process.exit(1)
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
