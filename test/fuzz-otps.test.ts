import { env } from 'cloudflare:workers'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { SANDBOX_PHONE_NUMBER } from '../src/phone'
import {
  asciiDigits,
  attributes,
  bodyObject,
  field,
  hugeString,
  locale,
  phoneLike,
  printable,
  rawBody,
  unicodeDigit,
} from './fuzz-arbitraries'
import { changedTables, type Outcome } from './fuzz-probe'
import { checkJsonRoute, FUZZ_RUNS, fuzzPool, jsonRequest, type Pool } from './fuzz-setup'
import { quietConsole } from './log-capture'

/**
 * Property-based tests of the OTP routes: whatever a client sends, the reply is a Stytch-shaped
 * JSON 4xx (or a 200 when the input happens to be valid and authorised), and a rejected request
 * changes nothing: every D1 table's rows, the KV keys, KV writes and queue sends are compared around
 * each request. Failures print fast-check's seed and the shrunk request; rerun with that seed.
 */

const E164 = /^\+[1-9][0-9]{1,14}$/

let pool: Pool

beforeAll(async () => {
  quietConsole()
  pool = await fuzzPool(env)
})

const expirationMinutes = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 10 }), weight: 3 },
  fc.integer({ min: -2, max: 12 }),
  fc.double({ noNaN: true, min: -1, max: 11 }),
)
const LOGIN_FIELDS = ['phone_number', 'expiration_minutes', 'attributes', 'create_user_as_pending', 'locale']

/** A code was issued for an accepted send: one KV record for the phone, one job for the number. */
function expectIssued(o: Outcome, phoneNumber: unknown) {
  expect(phoneNumber).toMatch(E164)
  expect(o.json?.phone_id).toMatch(/^phone-number-test-/)
  expect(o.json?.user_id).toMatch(/^user-test-/)
  if (phoneNumber === SANDBOX_PHONE_NUMBER) {
    expect(o.queueSends).toEqual([])
    expect(o.kvPuts).toEqual([])
    return
  }
  expect(o.kvPuts).toEqual([`otp:${String(o.json?.phone_id)}`])
  expect(o.queueSends).toHaveLength(1)
  expect(o.queueSends[0]).toMatchObject({ phone_id: o.json?.phone_id, phone_number: phoneNumber })
  expect(JSON.stringify(o.queueSends[0])).not.toContain('"code":"')
}

describe('fuzz: POST /v1/otps/whatsapp/login_or_create', () => {
  it('is Stytch JSON, never 5xx; only ASCII E.164 is accepted; a rejection changes nothing', async () => {
    const body = bodyObject(
      {
        phone_number: field(fc.oneof(phoneLike, fc.constantFrom(...pool.phoneNumbers, SANDBOX_PHONE_NUMBER))),
        expiration_minutes: field(expirationMinutes),
        attributes: field(attributes),
        create_user_as_pending: field(fc.boolean()),
        locale: field(locale),
      },
      ['phone_number'],
    )
    await fc.assert(
      fc.asyncProperty(jsonRequest('/v1/otps/whatsapp/login_or_create', rawBody(body, LOGIN_FIELDS)), async (input) => {
        await checkJsonRoute(input, (o, sent) => {
          expect(Object.keys(o.json ?? {}).sort()).toEqual([
            'phone_id',
            'request_id',
            'status_code',
            'user_created',
            'user_id',
          ])
          expectIssued(o, sent.phone_number)
        })
      }),
      { numRuns: FUZZ_RUNS.login },
    )
  })
})

describe('fuzz: POST /v1/otps/sms/login_or_create', () => {
  it('is Stytch JSON, never 5xx; the SMS allowlists and enable_autofill hold; a rejection changes nothing', async () => {
    const body = bodyObject(
      {
        phone_number: field(fc.oneof(phoneLike, fc.constantFrom(...pool.phoneNumbers, SANDBOX_PHONE_NUMBER))),
        expiration_minutes: field(expirationMinutes),
        locale: field(locale),
        enable_autofill: field(fc.oneof(fc.boolean(), printable(5))),
      },
      ['phone_number'],
    )
    await fc.assert(
      fc.asyncProperty(
        jsonRequest('/v1/otps/sms/login_or_create', rawBody(body, [...LOGIN_FIELDS, 'enable_autofill'])),
        async (input) => {
          await checkJsonRoute(input, (o, sent) => {
            // The test project sends SMS to the US and Canada only, and has no autofill domain.
            expect(sent.enable_autofill).not.toBe(true)
            expect(String(sent.phone_number)).toMatch(/^\+1/)
            expectIssued(o, sent.phone_number)
            if (o.queueSends.length > 0) expect(o.queueSends[0]).toMatchObject({ channel: 'sms' })
          })
        },
      ),
      { numRuns: FUZZ_RUNS.smsLogin },
    )
  })
})

describe('fuzz: POST /v1/otps/whatsapp/send', () => {
  it('answers every request with Stytch JSON, never 5xx; a rejection changes nothing', async () => {
    const userId = fc.oneof(
      fc.constantFrom(...pool.userIds),
      fc.uuid().map((u) => `user-test-${u}`),
      fc.uuid().map((u) => `user-live-${u}`),
      printable(50),
    )
    const body = bodyObject(
      {
        phone_number: field(fc.oneof({ arbitrary: fc.constantFrom(...pool.phoneNumbers), weight: 2 }, phoneLike)),
        expiration_minutes: field(expirationMinutes),
        attributes: field(attributes),
        locale: field(locale),
        user_id: field(userId),
        session_token: field(fc.oneof(printable(50), hugeString)),
        session_jwt: field(fc.oneof(printable(50), fc.constant('a.b.c'))),
      },
      ['phone_number'],
    )
    const names = ['phone_number', 'user_id', 'expiration_minutes', 'locale', 'session_token']
    await fc.assert(
      fc.asyncProperty(jsonRequest('/v1/otps/whatsapp/send', rawBody(body, names)), async (input) => {
        await checkJsonRoute(input, (o, sent) => {
          expect(Object.keys(o.json ?? {}).sort()).toEqual(['phone_id', 'request_id', 'status_code', 'user_id'])
          expectIssued(o, sent.phone_number)
        })
      }),
      { numRuns: FUZZ_RUNS.send },
    )
  })
})

// What a judged authentication attempt may write even though it fails: the wrong guess on the code's
// gate, the user's consecutive failures (and lock), and the failure counted against the IP.
const VERDICTS = new Set([
  'otp_code_not_found',
  'unable_to_auth_otp_code',
  'attribute_mismatch',
  'phone_number_not_found',
  'user_lock_limit_reached',
])
const FAILURE_ACCOUNTING = ['otp_codes', 'users', 'limit_counters']

describe('fuzz: POST /v1/otps/authenticate', () => {
  it('answers every request with Stytch JSON, never 5xx; a rejection changes only failure accounting', async () => {
    const methodId = fc.oneof(
      { arbitrary: fc.constantFrom(...pool.phoneIds, pool.sandboxPhoneId), weight: 6 },
      fc.uuid().map((u) => `phone-number-test-${u}`),
      printable(60),
      hugeString,
    )
    const code = fc.oneof(
      { arbitrary: asciiDigits(6, 6), weight: 4 },
      fc.constantFrom('000000', ...pool.codes),
      fc.array(unicodeDigit, { minLength: 6, maxLength: 6 }).map((ds) => ds.join('')),
      asciiDigits(0, 9),
      fc.integer({ min: 0, max: 999_999 }),
    )
    // Most pairs are independent (mostly wrong codes); some are a phone's own code, each of which can
    // succeed once, and some the sandbox pair, which always can.
    const pair = fc.oneof(
      { arbitrary: fc.record({ method_id: field(methodId), code: field(code) }), weight: 6 },
      fc.record({ method_id: field(methodId), code: field(code) }, { requiredKeys: [] }),
      fc.nat({ max: pool.phoneIds.length - 1 }).map((i) => ({ method_id: pool.phoneIds[i], code: pool.codes[i] })),
      fc.constant({ method_id: pool.sandboxPhoneId, code: '000000' }),
    )
    const rest = bodyObject(
      {
        attributes: field(attributes),
        options: field(
          fc.record({ ip_match_required: field(fc.boolean()), user_agent_match_required: field(fc.boolean()) }),
        ),
        session_token: field(printable(50)),
        session_jwt: field(printable(50)),
        session_duration_minutes: field(fc.integer({ min: -10, max: 600_000 })),
        session_custom_claims: field(
          fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
        ),
        telemetry_id: field(printable(40)),
      },
      [],
    )
    const body = fc.tuple(rest, pair).map(([o, p]) => ({ ...o, ...p }))
    const names = ['method_id', 'code', 'attributes', 'session_duration_minutes']
    await fc.assert(
      fc.asyncProperty(jsonRequest('/v1/otps/authenticate', rawBody(body, names)), async (input) => {
        await checkJsonRoute(
          input,
          (o, sent) => {
            expect(o.json?.method_id).toBe(sent.method_id)
            expect(o.json?.user).toMatchObject({ user_id: o.json?.user_id })
            expect(o.queueSends).toEqual([])
          },
          (o, errorType) => {
            if (!VERDICTS.has(errorType)) return []
            const changed = changedTables(o.before, o.after)
            for (const table of ['otp_codes', 'users'] as const) {
              if (changed[table]) expect(changed[table][1]).toBe(changed[table][0])
            }
            // A failure counts once per project and per IP scope (up to three): at most one new row each.
            if (changed.limit_counters) {
              const added = changed.limit_counters[1] - changed.limit_counters[0]
              expect(added).toBeGreaterThanOrEqual(0)
              expect(added).toBeLessThanOrEqual(4)
            }
            return FAILURE_ACCOUNTING
          },
        )
      }),
      { numRuns: FUZZ_RUNS.authenticate },
    )
  })
})
