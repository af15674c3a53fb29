import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import {
  CONFIG,
  checkConfig,
  checkMetaAccount,
  checkTwilioAccount,
  type Finding,
  REQUIRED_SECRETS,
  requiredSecrets,
} from '../src/config'
import { requireSecret } from '../src/env'

/**
 * The configuration list (src/config.ts) and the checks `npm run doctor` runs on it. The Graph API
 * is a fake `fetch` here: nothing leaves the test.
 */

const LOCAL_DEV = {
  WHATSAPP_PROVIDER: 'console',
  OTP_PEPPER: 'local-development-pepper-not-secret-0000000000000000',
  CODE_ENCRYPTION_KEY: 'bG9jYWwtZGV2LWtleS1ub3Qtc2VjcmV0LTAwMDAwMDA=',
  SESSION_KEY_ENCRYPTION_KEY: 'bG9jYWwtZGV2LXNlc3Npb24ta2V5LW5vdC1zZWNyZXQ=',
  WHATSAPP_ACCESS_TOKEN: '',
  WHATSAPP_APP_SECRET: 'local-development-app-secret',
  WHATSAPP_VERIFY_TOKEN: 'local-development-verify-token',
}

const META = {
  WHATSAPP_PROVIDER: 'meta',
  OTP_PEPPER: 'a'.repeat(48),
  CODE_ENCRYPTION_KEY: btoa('k'.repeat(32)),
  SESSION_KEY_ENCRYPTION_KEY: btoa('s'.repeat(32)),
  WHATSAPP_ACCESS_TOKEN: `EAAJB${'x'.repeat(40)}`,
  WHATSAPP_APP_SECRET: '0123456789abcdef0123456789abcdef',
  WHATSAPP_VERIFY_TOKEN: 'v'.repeat(24),
  WHATSAPP_GRAPH_VERSION: 'v26.0',
  WHATSAPP_PHONE_NUMBER_ID: '106540352242922',
  WHATSAPP_TEMPLATE_NAME: 'verification_code',
  WHATSAPP_TEMPLATE_LANGUAGES: '{"en":"en_US","es":"es","fr":"fr","pt-br":"pt_BR"}',
  WHATSAPP_BUSINESS_ACCOUNT_ID: '102290129340398',
}

const errors = (findings: Finding[]) => findings.filter((f) => f.level === 'error').map((f) => f.subject)

describe('the configuration list', () => {
  it('requires the three keys always and the Meta secrets, with nothing optional among the required', () => {
    expect(REQUIRED_SECRETS).toEqual([
      'OTP_PEPPER',
      'CODE_ENCRYPTION_KEY',
      'SESSION_KEY_ENCRYPTION_KEY',
      'WHATSAPP_ACCESS_TOKEN',
      'WHATSAPP_APP_SECRET',
      'WHATSAPP_VERIFY_TOKEN',
    ])
    expect(new Set(CONFIG.map((e) => e.name)).size).toBe(CONFIG.length)
  })

  it('requires the Twilio auth token only of an environment that sends SMS through Twilio', () => {
    expect(requiredSecrets({ SMS_PROVIDER: 'none' })).toEqual(REQUIRED_SECRETS)
    expect(requiredSecrets({})).toEqual(REQUIRED_SECRETS)
    expect(requiredSecrets({ SMS_PROVIDER: 'twilio' })).toEqual([...REQUIRED_SECRETS, 'TWILIO_AUTH_TOKEN'])
  })

  it('is what the Worker checks its secrets against', () => {
    expect(() => requireSecret({ ...env, CODE_ENCRYPTION_KEY: btoa('k'.repeat(31)) }, 'CODE_ENCRYPTION_KEY')).toThrow(
      /CODE_ENCRYPTION_KEY must decode to 32 bytes, not 31/,
    )
    expect(() => requireSecret({ ...env, OTP_PEPPER: 'short' }, 'OTP_PEPPER')).toThrow(/OTP_PEPPER must be at least 32/)
    expect(requireSecret(env, 'OTP_PEPPER')).toBe(env.OTP_PEPPER)
  })
})

describe('checkConfig (npm run doctor)', () => {
  it('names every missing setting of a fresh clone (no .dev.vars, provider meta from wrangler.toml)', () => {
    const findings = checkConfig({
      values: {
        WHATSAPP_PROVIDER: 'meta',
        WHATSAPP_GRAPH_VERSION: 'v26.0',
        WHATSAPP_TEMPLATE_NAME: 'verification_code',
      },
    })
    expect(errors(findings)).toEqual([...REQUIRED_SECRETS, 'WHATSAPP_PHONE_NUMBER_ID'])
    for (const f of findings.filter((x) => x.level === 'error')) expect(f.message).toMatch(/^is not set/)
  })

  it('passes the local development configuration (console provider; Meta settings unused)', () => {
    expect(errors(checkConfig({ values: LOCAL_DEV }))).toEqual([])
  })

  it('passes a complete Meta configuration and flags each malformed value by name, never echoing it', () => {
    expect(errors(checkConfig({ values: META }))).toEqual([])
    const bad = {
      ...META,
      OTP_PEPPER: 'too-short-pepper',
      CODE_ENCRYPTION_KEY: 'not base64 !',
      SESSION_KEY_ENCRYPTION_KEY: btoa('16-bytes-only-00'),
      WHATSAPP_PHONE_NUMBER_ID: '+1 555 0100',
      WHATSAPP_TEMPLATE_LANGUAGES: '{"en":"en-US"}',
      CODE_ENCRYPTION_KEY_PREVIOUS: 'x',
      DELIVERY_RETENTION_DAYS: '0',
    }
    const findings = checkConfig({ values: bad })
    expect(errors(findings)).toEqual([
      'OTP_PEPPER',
      'CODE_ENCRYPTION_KEY',
      'SESSION_KEY_ENCRYPTION_KEY',
      'CODE_ENCRYPTION_KEY_PREVIOUS',
      'WHATSAPP_PHONE_NUMBER_ID',
      'WHATSAPP_TEMPLATE_LANGUAGES',
      'DELIVERY_RETENTION_DAYS',
    ])
    const text = JSON.stringify(findings)
    for (const value of ['too-short-pepper', 'not base64 !', '+1 555 0100']) expect(text).not.toContain(value)
  })

  it('takes secrets known only by name (a deployed Worker) as set', () => {
    const { OTP_PEPPER: _p, WHATSAPP_APP_SECRET: _a, ...vars } = META
    const findings = checkConfig({ values: vars, setWithoutValue: new Set(['OTP_PEPPER']) })
    expect(errors(findings)).toEqual(['WHATSAPP_APP_SECRET'])
  })
})

/** A fake Graph API: the phone number and the templates it knows, and every URL it was asked for. */
function graph(templates: { language: string; status: string; category?: string }[], phoneStatus = 200) {
  const urls: string[] = []
  const fetchFn = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input)
    urls.push(url)
    expect(new Headers(init?.headers).get('authorization')).toBe(`Bearer ${META.WHATSAPP_ACCESS_TOKEN}`)
    if (url.startsWith(`https://graph.facebook.com/v26.0/${META.WHATSAPP_PHONE_NUMBER_ID}?`)) {
      return phoneStatus === 200
        ? Response.json({ id: META.WHATSAPP_PHONE_NUMBER_ID, display_phone_number: '+1 555-0100', verified_name: 'X' })
        : Response.json(
            { error: { code: 100, type: 'GraphMethodException', message: 'Unsupported get request' } },
            { status: phoneStatus },
          )
    }
    if (url.startsWith(`https://graph.facebook.com/v26.0/${META.WHATSAPP_BUSINESS_ACCOUNT_ID}/message_templates?`)) {
      return Response.json({
        data: templates.map((t) => ({ name: 'verification_code', category: 'AUTHENTICATION', ...t })),
      })
    }
    return Response.json({ error: { code: 803 } }, { status: 404 })
  })
  return { fetchFn: fetchFn as unknown as typeof fetch, urls }
}

const ALL_APPROVED = ['en_US', 'es', 'fr', 'pt_BR'].map((language) => ({ language, status: 'APPROVED' }))

describe('checkConfig with SMS through Twilio', () => {
  const TWILIO = {
    ...META,
    SMS_PROVIDER: 'twilio',
    TWILIO_ACCOUNT_SID: `AC${'0'.repeat(32)}`,
    TWILIO_AUTH_TOKEN: 'f'.repeat(32),
    TWILIO_SENDER: '+15005550006',
  }

  it('needs the account, the token and the sender only with SMS_PROVIDER twilio, and flags malformed ones', () => {
    expect(errors(checkConfig({ values: TWILIO }))).toEqual([])
    expect(errors(checkConfig({ values: { ...META, SMS_PROVIDER: 'none' } }))).toEqual([])
    expect(errors(checkConfig({ values: { ...META, SMS_PROVIDER: 'twilio' } }))).toEqual([
      'TWILIO_AUTH_TOKEN',
      'TWILIO_ACCOUNT_SID',
      'TWILIO_SENDER',
    ])
    const bad = {
      ...TWILIO,
      TWILIO_SENDER: 'MyBrand',
      TWILIO_STATUS_CALLBACK_URL: 'http://otp.example.com/v1/webhooks/twilio',
      CONSOLE_WHATSAPP_UNREACHABLE: '12025550199',
      SMS_PROVIDER: 'twilio',
    }
    expect(errors(checkConfig({ values: bad }))).toEqual([
      'TWILIO_SENDER',
      'TWILIO_STATUS_CALLBACK_URL',
      'CONSOLE_WHATSAPP_UNREACHABLE',
    ])
    expect(errors(checkConfig({ values: { ...META, SMS_PROVIDER: 'sms' } }))).toEqual(['SMS_PROVIDER'])
  })

  it('wants both halves of an API key or neither', () => {
    const half = { ...TWILIO, TWILIO_API_KEY_SID: `SK${'1'.repeat(32)}` }
    expect(errors(checkConfig({ values: half }))).toEqual(['TWILIO_API_KEY_SID'])
    expect(errors(checkConfig({ values: half, setWithoutValue: new Set(['TWILIO_API_KEY_SECRET']) }))).toEqual([])
  })
})

/** A fake Twilio API: the account's status, its numbers, a Messaging Service, and every URL asked for. */
function twilioApi(options: { status?: string; sms?: boolean; number?: boolean; pool?: number; keyOk?: boolean } = {}) {
  const account = `AC${'0'.repeat(32)}`
  const token = 'f'.repeat(32)
  const calls: { url: string; authorization: string | null }[] = []
  const fetchFn = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input)
    const authorization = new Headers(init?.headers).get('authorization')
    calls.push({ url, authorization })
    const asToken = authorization === `Basic ${btoa(`${account}:${token}`)}`
    const asKey = authorization === `Basic ${btoa(`SK${'1'.repeat(32)}:${'K'.repeat(32)}`)}` && options.keyOk !== false
    if (!asToken && !asKey) return Response.json({ code: 20003, message: 'Authenticate', status: 401 }, { status: 401 })
    if (url === `https://api.twilio.com/2010-04-01/Accounts/${account}.json`) {
      return Response.json({ sid: account, status: options.status ?? 'active' })
    }
    if (url.startsWith(`https://api.twilio.com/2010-04-01/Accounts/${account}/IncomingPhoneNumbers.json?`)) {
      const numbers =
        options.number === false
          ? []
          : [{ phone_number: '+15005550006', capabilities: { sms: options.sms ?? true, voice: true } }]
      return Response.json({ incoming_phone_numbers: numbers })
    }
    if (url === `https://messaging.twilio.com/v1/Services/MG${'2'.repeat(32)}`) {
      return Response.json({ sid: `MG${'2'.repeat(32)}` })
    }
    if (url.startsWith(`https://messaging.twilio.com/v1/Services/MG${'2'.repeat(32)}/PhoneNumbers?`)) {
      return Response.json({ phone_numbers: Array.from({ length: options.pool ?? 1 }, () => ({ sid: 'PN1' })) })
    }
    return Response.json({ code: 20404, status: 404 }, { status: 404 })
  })
  const values = {
    SMS_PROVIDER: 'twilio',
    TWILIO_ACCOUNT_SID: account,
    TWILIO_AUTH_TOKEN: token,
    TWILIO_SENDER: '+15005550006',
  }
  return { fetchFn: fetchFn as unknown as typeof fetch, calls, values }
}

describe('checkTwilioAccount (npm run doctor with Twilio credentials, Twilio mocked)', () => {
  it('finds an active account, the token and an SMS-capable sender number', async () => {
    const { fetchFn, calls, values } = twilioApi()
    const findings = await checkTwilioAccount(values, fetchFn)
    expect(errors(findings)).toEqual([])
    expect(findings.map((f) => [f.level, f.subject])).toEqual([
      ['ok', 'TWILIO_ACCOUNT_SID'],
      ['ok', 'TWILIO_SENDER'],
    ])
    expect(calls[1]?.url).toContain('PhoneNumber=%2B15005550006')
    expect(JSON.stringify(findings)).not.toContain(values.TWILIO_AUTH_TOKEN)
  })

  it('names a wrong token, a suspended account, a foreign number and one without SMS', async () => {
    const wrong = twilioApi()
    const bad = await checkTwilioAccount({ ...wrong.values, TWILIO_AUTH_TOKEN: 'e'.repeat(32) }, wrong.fetchFn)
    expect(bad).toEqual([
      {
        level: 'error',
        subject: 'TWILIO_AUTH_TOKEN',
        message: 'does not authenticate TWILIO_ACCOUNT_SID: Twilio answered 401 (error code 20003)',
      },
    ])
    const suspended = twilioApi({ status: 'suspended' })
    expect(errors(await checkTwilioAccount(suspended.values, suspended.fetchFn))).toEqual(['TWILIO_ACCOUNT_SID'])
    const foreign = twilioApi({ number: false })
    const notOurs = await checkTwilioAccount(foreign.values, foreign.fetchFn)
    expect(notOurs.at(-1)).toMatchObject({ level: 'error', message: 'is not a phone number of this account' })
    const voiceOnly = twilioApi({ sms: false })
    const noSms = await checkTwilioAccount(voiceOnly.values, voiceOnly.fetchFn)
    expect(noSms.at(-1)).toMatchObject({ level: 'error', message: 'is a number of this account that cannot send SMS' })
  })

  it('checks an API key and a Messaging Service sender (warning when its pool has no number)', async () => {
    const withKey = twilioApi({ pool: 0 })
    const values = {
      ...withKey.values,
      TWILIO_API_KEY_SID: `SK${'1'.repeat(32)}`,
      TWILIO_API_KEY_SECRET: 'K'.repeat(32),
      TWILIO_SENDER: `MG${'2'.repeat(32)}`,
    }
    const findings = await checkTwilioAccount(values, withKey.fetchFn)
    expect(findings.map((f) => [f.level, f.subject])).toEqual([
      ['ok', 'TWILIO_ACCOUNT_SID'],
      ['ok', 'TWILIO_API_KEY_SID'],
      ['warning', 'TWILIO_SENDER'],
    ])
    // Once the key authenticates, the sender is read with it.
    expect(withKey.calls.at(-1)?.authorization).toBe(`Basic ${btoa(`SK${'1'.repeat(32)}:${'K'.repeat(32)}`)}`)
    const badKey = twilioApi({ keyOk: false })
    const refused = await checkTwilioAccount({ ...values, TWILIO_SENDER: '+15005550006' }, badKey.fetchFn)
    expect(errors(refused)).toEqual(['TWILIO_API_KEY_SID'])
  })

  it('asks nothing when the settings it needs are malformed', async () => {
    const { fetchFn, calls, values } = twilioApi()
    const findings = await checkTwilioAccount({ ...values, TWILIO_SENDER: 'x' }, fetchFn)
    expect(calls).toEqual([])
    expect(findings).toEqual([
      { level: 'warning', subject: 'Twilio account', message: 'not checked: fix the settings above first' },
    ])
  })
})

describe('checkMetaAccount (npm run doctor with Meta credentials, Graph API mocked)', () => {
  it('finds the phone number and an approved AUTHENTICATION template in every locale', async () => {
    const { fetchFn, urls } = graph(ALL_APPROVED)
    const findings = await checkMetaAccount(META, fetchFn)
    expect(errors(findings)).toEqual([])
    expect(findings.filter((f) => f.level === 'ok').map((f) => f.subject)).toEqual([
      'WHATSAPP_PHONE_NUMBER_ID',
      'template verification_code (en_US, locale en)',
      'template verification_code (es, locale es)',
      'template verification_code (fr, locale fr)',
      'template verification_code (pt_BR, locale pt-br)',
    ])
    expect(urls[1]).toContain('name=verification_code')
  })

  it('names each missing, unapproved or wrong-category language', async () => {
    const { fetchFn } = graph([
      { language: 'en_US', status: 'APPROVED' },
      { language: 'es', status: 'PENDING' },
      { language: 'fr', status: 'APPROVED', category: 'MARKETING' },
    ])
    const findings = await checkMetaAccount(META, fetchFn)
    expect(findings.filter((f) => f.level === 'error')).toEqual([
      { level: 'error', subject: 'template verification_code (es, locale es)', message: 'is PENDING, not APPROVED' },
      {
        level: 'error',
        subject: 'template verification_code (fr, locale fr)',
        message: 'is a MARKETING template, not AUTHENTICATION',
      },
      {
        level: 'error',
        subject: 'template verification_code (pt_BR, locale pt-br)',
        message: 'does not exist in the business account',
      },
    ])
  })

  it('reports a phone-number id the token cannot use, with Meta error code only', async () => {
    const { fetchFn } = graph(ALL_APPROVED, 400)
    const findings = await checkMetaAccount(META, fetchFn)
    const phone = findings.find((f) => f.subject === 'WHATSAPP_PHONE_NUMBER_ID')
    expect(phone?.level).toBe('error')
    expect(phone?.message).toContain('Graph API answered 400 (error code 100, GraphMethodException)')
    expect(phone?.message).not.toContain('Unsupported')
  })

  it('checks the templates only with WHATSAPP_BUSINESS_ACCOUNT_ID, and says so', async () => {
    const { fetchFn, urls } = graph(ALL_APPROVED)
    const findings = await checkMetaAccount({ ...META, WHATSAPP_BUSINESS_ACCOUNT_ID: '' }, fetchFn)
    expect(urls).toHaveLength(1)
    expect(findings.at(-1)).toMatchObject({
      level: 'warning',
      message: expect.stringContaining('WHATSAPP_BUSINESS_ACCOUNT_ID'),
    })
  })

  it('asks nothing when the settings it needs are malformed', async () => {
    const { fetchFn, urls } = graph(ALL_APPROVED)
    const findings = await checkMetaAccount({ ...META, WHATSAPP_PHONE_NUMBER_ID: 'abc' }, fetchFn)
    expect(urls).toEqual([])
    expect(findings).toEqual([
      { level: 'warning', subject: 'Meta account', message: 'not checked: fix the settings above first' },
    ])
  })
})
