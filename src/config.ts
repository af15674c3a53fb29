import type { Locale } from './schemas'

/**
 * Every secret and variable the Worker reads, in one list: the Worker's own checks (src/env.ts,
 * src/whatsapp/meta.ts), `npm run doctor` (scripts/doctor.mjs) and the README's configuration table
 * (scripts/readme-tables.mjs) all read it, and a test holds wrangler.toml's `secrets.required` to it.
 *
 * This file imports nothing at run time, so Node runs it as is (type stripping) for the scripts.
 */

export interface ConfigEntry {
  name: string
  kind: 'secret' | 'var'
  /**
   * When it must be set: always, only with the meta provider (WHATSAPP_PROVIDER), only with the
   * twilio provider (SMS_PROVIDER), or never (optional: checked only when set, e.g. a previous key
   * during a rotation, or a var with a default).
   */
  needed: 'always' | 'meta' | 'twilio' | 'optional'
  /** The value wrangler.toml gives a var (secrets have none). */
  default?: string
  description: string
  /** What is wrong with a value that is set, without repeating the value; null when it is fine. */
  problem: (value: string) => string | null
}

/** Shapes the Meta settings must have (they end up in Graph API URLs and request bodies). */
export const META_PATTERNS = {
  graphVersion: /^v[0-9]{1,3}\.[0-9]{1,2}$/,
  numericId: /^[0-9]{1,32}$/,
  templateName: /^[a-z0-9_]{1,512}$/,
  templateLanguage: /^[a-z]{2,3}(_[A-Z][A-Za-z]{1,3})?$/,
} as const

/** Shapes the Twilio settings must have (they end up in the REST API's URL, credentials and form). */
export const TWILIO_PATTERNS = {
  accountSid: /^AC[0-9a-f]{32}$/,
  apiKeySid: /^SK[0-9a-f]{32}$/,
  authToken: /^[0-9a-f]{32}$/,
  apiKeySecret: /^[A-Za-z0-9]{32}$/,
  messagingServiceSid: /^MG[0-9a-f]{32}$/,
  e164: /^\+[1-9][0-9]{1,14}$/,
} as const

/** TWILIO_SENDER as Twilio's form field: a number goes in `From`, a Messaging Service SID in `MessagingServiceSid`. */
export function twilioSender(raw: string | undefined): { From: string } | { MessagingServiceSid: string } | null {
  const value = (raw ?? '').trim()
  if (TWILIO_PATTERNS.e164.test(value)) return { From: value }
  if (TWILIO_PATTERNS.messagingServiceSid.test(value)) return { MessagingServiceSid: value }
  return null
}

/** TWILIO_STATUS_CALLBACK_URL: an https URL without credentials (Twilio posts delivery statuses to it). */
export function httpsUrl(value: string): string | null {
  let url: URL
  try {
    url = new URL(value.trim())
  } catch {
    return 'must be an https URL such as https://otp.example.com/v1/webhooks/twilio'
  }
  if (url.protocol !== 'https:' || url.username || url.password) {
    return 'must be an https URL such as https://otp.example.com/v1/webhooks/twilio'
  }
  return null
}

/** CONSOLE_WHATSAPP_UNREACHABLE: E.164 numbers, separated by commas, or nothing. */
export function unreachableNumbers(raw: string | undefined): Set<string> | string {
  const numbers = (raw ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '')
  const bad = numbers.find((n) => !TWILIO_PATTERNS.e164.test(n))
  if (bad !== undefined) return 'must be E.164 numbers separated by commas, e.g. +12025550199'
  return new Set(numbers)
}

/** Our locale → the template language approved in WhatsApp Manager, unless configured otherwise. */
export const DEFAULT_TEMPLATE_LANGUAGES: Record<Locale, string> = {
  en: 'en_US',
  es: 'es',
  fr: 'fr',
  'pt-br': 'pt_BR',
}

const atLeast = (min: number, what: string) => (value: string) =>
  value.length >= min ? null : `must be at least ${min} characters (${what})`

/** 32 bytes in base64 or base64url: an AES-256-GCM key. */
function aes256Key(value: string): string | null {
  const text = value.trim()
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) return 'must be base64 (e.g. `openssl rand -base64 32`)'
  const bytes = Math.floor((text.replace(/=+$/, '').length * 3) / 4)
  return bytes === 32 ? null : `must decode to 32 bytes, not ${bytes} (e.g. \`openssl rand -base64 32\`)`
}

const matches = (pattern: RegExp, shape: string) => (value: string) =>
  pattern.test(value.trim()) ? null : `must look like ${shape}`

/** WHATSAPP_TEMPLATE_LANGUAGES as the full map (defaults under it), or the reason it is unusable. */
export function templateLanguages(raw: string | undefined): Record<Locale, string> | string {
  if (!raw?.trim()) return { ...DEFAULT_TEMPLATE_LANGUAGES }
  let json: unknown
  try {
    json = JSON.parse(raw)
  } catch {
    return 'must be a JSON object like {"en":"en_US","pt-br":"pt_BR"}'
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return 'must be a JSON object like {"en":"en_US","pt-br":"pt_BR"}'
  }
  const languages: Record<string, string> = { ...DEFAULT_TEMPLATE_LANGUAGES }
  for (const [locale, language] of Object.entries(json)) {
    if (!(locale in DEFAULT_TEMPLATE_LANGUAGES)) return `has an unknown locale "${locale}"`
    if (typeof language !== 'string' || !META_PATTERNS.templateLanguage.test(language)) {
      return `maps "${locale}" to something that is not a template language code like en_US`
    }
    languages[locale] = language
  }
  return languages as Record<Locale, string>
}

const pepper: ConfigEntry['problem'] = atLeast(32, 'e.g. `openssl rand -base64 48`')
const verifyToken: ConfigEntry['problem'] = atLeast(16, 'a random string, e.g. `openssl rand -hex 24`')

export const CONFIG: readonly ConfigEntry[] = [
  {
    name: 'OTP_PEPPER',
    kind: 'secret',
    needed: 'always',
    description: 'HMAC key for the stored hashes of codes (at least 32 random bytes)',
    problem: pepper,
  },
  {
    name: 'CODE_ENCRYPTION_KEY',
    kind: 'secret',
    needed: 'always',
    description: 'AES-256-GCM key (32 bytes, base64) for the code inside a delivery job',
    problem: aes256Key,
  },
  {
    name: 'SESSION_KEY_ENCRYPTION_KEY',
    kind: 'secret',
    needed: 'always',
    description:
      "32 random bytes, base64: HKDF derives from it one AES-256-GCM key per purpose, sealing the projects' JWT signing keys and the sessions' tokens, IP addresses and user agents at rest",
    problem: aes256Key,
  },
  {
    name: 'WHATSAPP_ACCESS_TOKEN',
    kind: 'secret',
    needed: 'meta',
    description: 'System-user token with `whatsapp_business_messaging`',
    problem: (value) => (/^[A-Za-z0-9_.|-]{20,}$/.test(value.trim()) ? null : 'must be a Meta access token (EAA…)'),
  },
  {
    name: 'WHATSAPP_APP_SECRET',
    kind: 'secret',
    needed: 'meta',
    description: 'Meta app secret; verifies `X-Hub-Signature-256` on the status webhook',
    problem: (value) => (/^[0-9a-f]{32}$/.test(value.trim()) ? null : "must be the Meta app's secret (32 hex digits)"),
  },
  {
    name: 'WHATSAPP_VERIFY_TOKEN',
    kind: 'secret',
    needed: 'meta',
    description: "Random string; the same value goes into Meta's webhook set-up",
    problem: verifyToken,
  },
  {
    name: 'TWILIO_AUTH_TOKEN',
    kind: 'secret',
    needed: 'twilio',
    description:
      "Twilio account's auth token: verifies `X-Twilio-Signature` on the SMS status callback, and authenticates sends unless an API key is set",
    problem: matches(TWILIO_PATTERNS.authToken, 'a Twilio auth token (32 hex digits)'),
  },
  {
    name: 'TWILIO_API_KEY_SECRET',
    kind: 'secret',
    needed: 'optional',
    description: 'With `TWILIO_API_KEY_SID`: the API key secret sends are authenticated with instead of the auth token',
    problem: matches(TWILIO_PATTERNS.apiKeySecret, 'a Twilio API key secret (32 letters and digits)'),
  },
  {
    name: 'OTP_PEPPER_PREVIOUS',
    kind: 'secret',
    needed: 'optional',
    description: 'During a rotation only: the previous `OTP_PEPPER` (read, never written)',
    problem: pepper,
  },
  {
    name: 'CODE_ENCRYPTION_KEY_PREVIOUS',
    kind: 'secret',
    needed: 'optional',
    description: 'During a rotation only: the previous `CODE_ENCRYPTION_KEY`',
    problem: aes256Key,
  },
  {
    name: 'SESSION_KEY_ENCRYPTION_KEY_PREVIOUS',
    kind: 'secret',
    needed: 'optional',
    description: 'During a rotation only: the previous `SESSION_KEY_ENCRYPTION_KEY`',
    problem: aes256Key,
  },
  {
    name: 'WHATSAPP_PROVIDER',
    kind: 'var',
    needed: 'always',
    default: 'meta',
    description:
      '`meta` = WhatsApp Cloud API; `console` = local outbox (`GET /dev/outbox`), for development only (`.dev.vars.example`)',
    problem: (value) => (value === 'meta' || value === 'console' ? null : 'must be "meta" or "console"'),
  },
  {
    name: 'WHATSAPP_GRAPH_VERSION',
    kind: 'var',
    needed: 'meta',
    default: 'v26.0',
    description: 'Graph API version',
    problem: matches(META_PATTERNS.graphVersion, 'v26.0'),
  },
  {
    name: 'WHATSAPP_PHONE_NUMBER_ID',
    kind: 'var',
    needed: 'meta',
    default: '',
    description: 'WhatsApp Business phone-number id (digits; per environment in wrangler.toml)',
    problem: matches(META_PATTERNS.numericId, 'digits (the phone-number id in WhatsApp Manager)'),
  },
  {
    name: 'WHATSAPP_TEMPLATE_NAME',
    kind: 'var',
    needed: 'meta',
    default: 'verification_code',
    description: 'The approved AUTHENTICATION template',
    problem: matches(META_PATTERNS.templateName, 'lowercase letters, digits and underscores'),
  },
  {
    name: 'WHATSAPP_TEMPLATE_LANGUAGES',
    kind: 'var',
    needed: 'optional',
    default: '{"en":"en_US","es":"es","fr":"fr","pt-br":"pt_BR"}',
    description: 'Locale → approved template language (`_`, never `-`); unset locales take the default',
    problem: (value) => {
      const parsed = templateLanguages(value)
      return typeof parsed === 'string' ? parsed : null
    },
  },
  {
    name: 'WHATSAPP_BUSINESS_ACCOUNT_ID',
    kind: 'var',
    needed: 'optional',
    default: '',
    description: 'WhatsApp Business Account id; only `npm run doctor` reads it, to check the templates',
    problem: matches(META_PATTERNS.numericId, 'digits (the WhatsApp Business Account id)'),
  },
  {
    name: 'SMS_PROVIDER',
    kind: 'var',
    needed: 'optional',
    default: 'none',
    description:
      '`twilio` = Twilio Programmable Messaging; `console` = local outbox (`GET /dev/outbox`), for development only; `none` (or unset) = no SMS: the SMS routes answer 503 and no WhatsApp code falls back to SMS',
    problem: (value) =>
      value === 'twilio' || value === 'console' || value === 'none' ? null : 'must be "twilio", "console" or "none"',
  },
  {
    name: 'TWILIO_ACCOUNT_SID',
    kind: 'var',
    needed: 'twilio',
    default: '',
    description: 'Twilio account SID (AC…)',
    problem: matches(TWILIO_PATTERNS.accountSid, 'AC followed by 32 hex digits (the account SID)'),
  },
  {
    name: 'TWILIO_SENDER',
    kind: 'var',
    needed: 'twilio',
    default: '',
    description:
      'The sender: an SMS-capable Twilio number in E.164 (sent as `From`) or a Messaging Service SID (MG…, sent as `MessagingServiceSid`)',
    problem: (value) =>
      twilioSender(value) ? null : 'must be an E.164 number (+15551234567) or a Messaging Service SID (MG…)',
  },
  {
    name: 'TWILIO_API_KEY_SID',
    kind: 'var',
    needed: 'optional',
    default: '',
    description:
      'Twilio API key SID (SK…); with `TWILIO_API_KEY_SECRET` it authenticates sends instead of the auth token',
    problem: matches(TWILIO_PATTERNS.apiKeySid, 'SK followed by 32 hex digits (an API key SID)'),
  },
  {
    name: 'TWILIO_STATUS_CALLBACK_URL',
    kind: 'var',
    needed: 'optional',
    default: '',
    description:
      "This Worker's `/v1/webhooks/twilio` as Twilio reaches it; sent as `StatusCallback`, so SMS deliveries record delivered / failed",
    problem: httpsUrl,
  },
  {
    name: 'CONSOLE_WHATSAPP_UNREACHABLE',
    kind: 'var',
    needed: 'optional',
    default: '',
    description:
      'Local development: numbers (E.164, comma-separated) the console WhatsApp provider reports as not on WhatsApp (Meta error 131026), to try the SMS fallback',
    problem: (value) => {
      const parsed = unreachableNumbers(value)
      return typeof parsed === 'string' ? parsed : null
    },
  },
  {
    name: 'DELIVERY_RETENTION_DAYS',
    kind: 'var',
    needed: 'optional',
    default: '30',
    description: 'Days a delivery record is kept before the retention purge (1-3650)',
    problem: (value) => {
      const days = /^[0-9]{1,4}$/.test(value.trim()) ? Number(value) : NaN
      return days >= 1 && days <= 3_650 ? null : 'must be a whole number of days from 1 to 3650'
    },
  },
]

/**
 * The secrets every deployed Worker must have: the keys and, with the deployed default provider
 * meta, the Meta secrets. wrangler.toml's `secrets.required` lists requiredSecrets() of its vars.
 */
export const REQUIRED_SECRETS: readonly string[] = CONFIG.filter(
  (e) => e.kind === 'secret' && (e.needed === 'always' || e.needed === 'meta'),
).map((e) => e.name)

/**
 * The secrets a Worker with these vars must have: REQUIRED_SECRETS, and the Twilio secrets when
 * SMS_PROVIDER is "twilio". An environment that turns Twilio on lists them in its `secrets.required`
 * too, so `wrangler deploy` refuses it without them (`npm run doctor` says so).
 */
export function requiredSecrets(vars: Record<string, unknown>): string[] {
  const twilio = vars.SMS_PROVIDER === 'twilio'
  return CONFIG.filter(
    (e) => e.kind === 'secret' && (REQUIRED_SECRETS.includes(e.name) || (twilio && e.needed === 'twilio')),
  ).map((e) => e.name)
}

export function configEntry(name: string): ConfigEntry {
  const entry = CONFIG.find((e) => e.name === name)
  if (!entry) throw new Error(`${name} is not in the configuration list`)
  return entry
}

export interface Finding {
  level: 'error' | 'warning' | 'ok'
  /** The setting (or check) it is about. */
  subject: string
  message: string
}

/**
 * A configuration as the doctor sees it: values it can read, and names that are known to be set
 * without their value (a deployed Worker's secrets).
 */
export interface ConfigInput {
  values: Record<string, string | undefined>
  setWithoutValue?: ReadonlySet<string>
}

/**
 * Checks a configuration against CONFIG: every setting the provider needs is set, and every value
 * that is set is well-formed. Messages name settings, never their values.
 */
export function checkConfig(input: ConfigInput): Finding[] {
  const findings: Finding[] = []
  const provider = (input.values.WHATSAPP_PROVIDER ?? '').trim()
  const smsProvider = (input.values.SMS_PROVIDER ?? '').trim() || 'none'
  for (const entry of CONFIG) {
    const value = input.values[entry.name]
    const set = (value !== undefined && value !== '') || input.setWithoutValue?.has(entry.name) === true
    const needed =
      entry.needed === 'always' ||
      (entry.needed === 'meta' && provider === 'meta') ||
      (entry.needed === 'twilio' && smsProvider === 'twilio')
    const how =
      entry.kind === 'secret'
        ? `secret: \`wrangler secret put ${entry.name}\`, locally a line in .dev.vars`
        : 'var: wrangler.toml'
    if (!set) {
      if (needed) findings.push({ level: 'error', subject: entry.name, message: `is not set (${how})` })
      continue
    }
    if (value === undefined || value === '') {
      findings.push({ level: 'ok', subject: entry.name, message: 'is set (value not readable from here)' })
      continue
    }
    const problem = entry.problem(value)
    if (problem && (needed || entry.needed === 'optional')) {
      findings.push({ level: 'error', subject: entry.name, message: problem })
    } else if (problem) {
      findings.push({
        level: 'warning',
        subject: entry.name,
        message: `${problem} (unused with provider "${entry.needed === 'twilio' ? smsProvider : provider}")`,
      })
    } else {
      findings.push({ level: 'ok', subject: entry.name, message: 'is set and well-formed' })
    }
  }
  // Twilio's API key is a pair: its SID (a var) without its secret, or the reverse, cannot authenticate.
  const isSet = (name: string) => (input.values[name] ?? '') !== '' || input.setWithoutValue?.has(name) === true
  if (isSet('TWILIO_API_KEY_SID') !== isSet('TWILIO_API_KEY_SECRET')) {
    findings.push({
      level: 'error',
      subject: 'TWILIO_API_KEY_SID',
      message: 'and TWILIO_API_KEY_SECRET must be set together (or neither, to send with the auth token)',
    })
  }
  return findings
}

export const GRAPH_API_ORIGIN = 'https://graph.facebook.com'
/** Twilio's REST API (accounts, numbers, messages) and its Messaging Services API. */
export const TWILIO_API_ORIGIN = 'https://api.twilio.com'
export const TWILIO_MESSAGING_ORIGIN = 'https://messaging.twilio.com'

interface GraphError {
  error?: { code?: number; type?: string }
}

/** A provider API's GET as the doctor reads it: the status and the JSON body (null when not JSON). */
async function getJson(
  fetchFn: typeof fetch,
  url: string,
  authorization: string,
): Promise<{ ok: boolean; status: number; body: unknown }> {
  const res = await fetchFn(url, { headers: { authorization } })
  let body: unknown = null
  try {
    body = await res.json()
  } catch {
    // not JSON: the caller reports the status
  }
  return { ok: res.ok, status: res.status, body }
}

/**
 * With Meta credentials: the phone-number id exists for the token, and (given the business account
 * id) the template exists, is an AUTHENTICATION template and is APPROVED in the language of every
 * locale. `fetchFn` is the Graph API (mocked in tests).
 */
export async function checkMetaAccount(
  values: Record<string, string | undefined>,
  fetchFn: typeof fetch,
): Promise<Finding[]> {
  const token = (values.WHATSAPP_ACCESS_TOKEN ?? '').trim()
  const version = (values.WHATSAPP_GRAPH_VERSION ?? '').trim()
  const phoneNumberId = (values.WHATSAPP_PHONE_NUMBER_ID ?? '').trim()
  const templateName = (values.WHATSAPP_TEMPLATE_NAME ?? '').trim()
  const accountId = (values.WHATSAPP_BUSINESS_ACCOUNT_ID ?? '').trim()
  const languages = templateLanguages(values.WHATSAPP_TEMPLATE_LANGUAGES)
  if (!token || !META_PATTERNS.graphVersion.test(version) || !META_PATTERNS.numericId.test(phoneNumberId)) {
    return [{ level: 'warning', subject: 'Meta account', message: 'not checked: fix the settings above first' }]
  }
  const get = (path: string) => getJson(fetchFn, `${GRAPH_API_ORIGIN}/${version}/${path}`, `Bearer ${token}`)
  const graphError = (r: { status: number; body: unknown }) => {
    const e = (r.body as GraphError | null)?.error
    return `Graph API answered ${r.status}${e?.code !== undefined ? ` (error code ${e.code}${e.type ? `, ${e.type}` : ''})` : ''}`
  }

  const findings: Finding[] = []
  const phone = await get(`${phoneNumberId}?fields=id,display_phone_number,verified_name`)
  const phoneBody = phone.body as { id?: string; display_phone_number?: string } | null
  if (phone.ok && phoneBody?.id === phoneNumberId) {
    findings.push({
      level: 'ok',
      subject: 'WHATSAPP_PHONE_NUMBER_ID',
      message: `exists for this token (${phoneBody.display_phone_number ?? 'number not shown'})`,
    })
  } else {
    findings.push({
      level: 'error',
      subject: 'WHATSAPP_PHONE_NUMBER_ID',
      message: `is not a phone number this token can send from: ${graphError(phone)}`,
    })
  }

  if (typeof languages === 'string' || !META_PATTERNS.templateName.test(templateName)) return findings
  if (!META_PATTERNS.numericId.test(accountId)) {
    findings.push({
      level: 'warning',
      subject: 'WHATSAPP_TEMPLATE_NAME',
      message: 'templates not checked: set WHATSAPP_BUSINESS_ACCOUNT_ID (a var) to check them',
    })
    return findings
  }
  const templates = await get(
    `${accountId}/message_templates?name=${encodeURIComponent(templateName)}&fields=name,language,status,category&limit=100`,
  )
  if (!templates.ok) {
    findings.push({
      level: 'error',
      subject: 'WHATSAPP_TEMPLATE_NAME',
      message: `templates unreadable: ${graphError(templates)}`,
    })
    return findings
  }
  const rows = ((templates.body as { data?: unknown } | null)?.data ?? []) as {
    name?: string
    language?: string
    status?: string
    category?: string
  }[]
  for (const [locale, language] of Object.entries(languages)) {
    const subject = `template ${templateName} (${language}, locale ${locale})`
    const row = Array.isArray(rows) ? rows.find((t) => t.name === templateName && t.language === language) : undefined
    if (!row) findings.push({ level: 'error', subject, message: 'does not exist in the business account' })
    else if (row.status !== 'APPROVED')
      findings.push({ level: 'error', subject, message: `is ${row.status ?? 'of unknown status'}, not APPROVED` })
    else if (row.category !== 'AUTHENTICATION')
      findings.push({ level: 'error', subject, message: `is a ${row.category} template, not AUTHENTICATION` })
    else findings.push({ level: 'ok', subject, message: 'exists and is approved' })
  }
  return findings
}

/**
 * With Twilio credentials: the account SID and auth token authenticate (the token also checks the
 * status callback's signatures) and the account is active; an API key, if set, authenticates too;
 * the sender exists in the account and can send SMS (a number with the SMS capability, or a
 * Messaging Service, warned about when its pool has no number). `fetchFn` is Twilio's API (mocked
 * in tests). Messages name settings and Twilio's error codes, never values.
 */
export async function checkTwilioAccount(
  values: Record<string, string | undefined>,
  fetchFn: typeof fetch,
): Promise<Finding[]> {
  const accountSid = (values.TWILIO_ACCOUNT_SID ?? '').trim()
  const authToken = (values.TWILIO_AUTH_TOKEN ?? '').trim()
  const keySid = (values.TWILIO_API_KEY_SID ?? '').trim()
  const keySecret = (values.TWILIO_API_KEY_SECRET ?? '').trim()
  const sender = twilioSender(values.TWILIO_SENDER)
  if (!TWILIO_PATTERNS.accountSid.test(accountSid) || !TWILIO_PATTERNS.authToken.test(authToken) || !sender) {
    return [{ level: 'warning', subject: 'Twilio account', message: 'not checked: fix the settings above first' }]
  }
  const basic = (user: string, password: string) => `Basic ${btoa(`${user}:${password}`)}`
  const get = async (url: string, authorization: string) => {
    const res = await getJson(fetchFn, url, authorization)
    return { ...res, body: (res.body ?? {}) as Record<string, unknown> }
  }
  const twilioError = (r: { status: number; body: Record<string, unknown> }) =>
    `Twilio answered ${r.status}${typeof r.body.code === 'number' ? ` (error code ${r.body.code})` : ''}`
  const accountUrl = `${TWILIO_API_ORIGIN}/2010-04-01/Accounts/${accountSid}`

  const findings: Finding[] = []
  const account = await get(`${accountUrl}.json`, basic(accountSid, authToken))
  if (!account.ok) {
    findings.push({
      level: 'error',
      subject: 'TWILIO_AUTH_TOKEN',
      message: `does not authenticate TWILIO_ACCOUNT_SID: ${twilioError(account)}`,
    })
    return findings
  }
  const status = String(account.body.status ?? 'unknown')
  findings.push(
    status === 'active'
      ? {
          level: 'ok',
          subject: 'TWILIO_ACCOUNT_SID',
          message: 'and TWILIO_AUTH_TOKEN authenticate; the account is active',
        }
      : { level: 'error', subject: 'TWILIO_ACCOUNT_SID', message: `names an account that is ${status}, not active` },
  )
  let authorization = basic(accountSid, authToken)
  if (keySid || keySecret) {
    const key = await get(`${accountUrl}.json`, basic(keySid, keySecret))
    findings.push(
      key.ok
        ? { level: 'ok', subject: 'TWILIO_API_KEY_SID', message: 'and TWILIO_API_KEY_SECRET authenticate' }
        : {
            level: 'error',
            subject: 'TWILIO_API_KEY_SID',
            message: `and TWILIO_API_KEY_SECRET do not authenticate: ${twilioError(key)}`,
          },
    )
    if (key.ok) authorization = basic(keySid, keySecret)
  }

  if ('From' in sender) {
    const numbers = await get(
      `${accountUrl}/IncomingPhoneNumbers.json?PhoneNumber=${encodeURIComponent(sender.From)}`,
      authorization,
    )
    const list = numbers.body.incoming_phone_numbers
    const number = Array.isArray(list) ? (list[0] as { capabilities?: { sms?: unknown } } | undefined) : undefined
    if (!numbers.ok) {
      findings.push({
        level: 'error',
        subject: 'TWILIO_SENDER',
        message: `numbers unreadable: ${twilioError(numbers)}`,
      })
    } else if (!number) {
      findings.push({ level: 'error', subject: 'TWILIO_SENDER', message: 'is not a phone number of this account' })
    } else if (number.capabilities?.sms !== true) {
      findings.push({
        level: 'error',
        subject: 'TWILIO_SENDER',
        message: 'is a number of this account that cannot send SMS',
      })
    } else {
      findings.push({ level: 'ok', subject: 'TWILIO_SENDER', message: 'is an SMS-capable number of this account' })
    }
    return findings
  }
  const serviceUrl = `${TWILIO_MESSAGING_ORIGIN}/v1/Services/${sender.MessagingServiceSid}`
  const service = await get(serviceUrl, authorization)
  if (!service.ok) {
    findings.push({
      level: 'error',
      subject: 'TWILIO_SENDER',
      message: `is not a Messaging Service of this account: ${twilioError(service)}`,
    })
    return findings
  }
  const pool = await get(`${serviceUrl}/PhoneNumbers?PageSize=1`, authorization)
  const numbers = pool.body.phone_numbers
  findings.push(
    pool.ok && Array.isArray(numbers) && numbers.length > 0
      ? { level: 'ok', subject: 'TWILIO_SENDER', message: 'is a Messaging Service with numbers in its sender pool' }
      : {
          level: 'warning',
          subject: 'TWILIO_SENDER',
          message:
            'is a Messaging Service without a phone number in its pool: it can send only from a short code or alphanumeric sender',
        },
  )
  return findings
}
