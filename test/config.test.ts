import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import { CONFIG, checkConfig, checkMetaAccount, type Finding, REQUIRED_SECRETS } from '../src/config'
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
