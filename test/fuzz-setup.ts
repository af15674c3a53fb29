import { env } from 'cloudflare:workers'
import fc from 'fast-check'
import { expect } from 'vitest'
import { SANDBOX_PHONE_NUMBER } from '../src/phone'
import { contentType, credentials } from './fuzz-arbitraries'
import { exchange, expectNothingChanged, expectWellFormed, type FuzzRequest, type Outcome } from './fuzz-probe'
import { FUZZ_SEED } from './fuzz-seed'
import { issueCode, loginOrCreate, TEST_PROJECT } from './helpers'

console.log(`fuzz seed: ${FUZZ_SEED} (FUZZ_SEED=${FUZZ_SEED} replays this run)`)

/**
 * Cases per property in the deep run (`npm run test:deep`, which sets FUZZ_DEPTH=deep): about 4,600
 * requests over the fuzz files, about 75 s of test time on an idle 2-core machine (each case is one
 * request and two full storage snapshots).
 */
export const DEEP_FUZZ_RUNS = {
  login: 400,
  smsLogin: 200,
  send: 400,
  authenticate: 400,
  users: 300,
  phones: 200,
  sessions: 300,
  webhookPost: 300,
  webhookGet: 200,
  outbox: 200,
  anyRoute: 400,
  usersCreate: 150,
  usersUpdate: 150,
  usersSearch: 150,
  usersSearchModel: 150,
  usersExchange: 100,
  usersExternalId: 50,
} as const

/** The default run (`npm test`) tries one case in this many of the deep run's, per property. */
export const DEFAULT_FUZZ_DIVISOR = 4

/**
 * Cases per property in this run: the deep counts, or (by default) a quarter of them. fast-check
 * draws a property's cases as one sequence from the seed, so the default run tries the first
 * quarter of exactly the cases the deep run tries: every property runs in both, and the deep run
 * adds cases, never replaces them.
 */
export const FUZZ_RUNS = Object.fromEntries(
  Object.entries(DEEP_FUZZ_RUNS).map(([name, n]) => [
    name,
    env.FUZZ_DEPTH === 'deep' ? n : Math.ceil(n / DEFAULT_FUZZ_DIVISOR),
  ]),
) as Record<keyof typeof DEEP_FUZZ_RUNS, number>

/** Real ids and codes in the fuzz project, so generated requests also hit existing rows. */
export interface Pool {
  phoneNumbers: string[]
  userIds: string[]
  phoneIds: string[]
  codes: string[]
  sandboxPhoneId: string
}

/** Creates a few users in TEST_PROJECT (lenient limits) and keeps their ids and live codes. */
export async function fuzzPool(base: Env, size = 8): Promise<Pool> {
  const pool: Pool = { phoneNumbers: [], userIds: [], phoneIds: [], codes: [], sandboxPhoneId: '' }
  for (let i = 0; i < size; i++) {
    const phoneNumber = `+1202555${String(7_000 + i)}`
    const issued = await issueCode(TEST_PROJECT, { phone_number: phoneNumber }, { env: base, deliver: false })
    pool.phoneNumbers.push(phoneNumber)
    pool.userIds.push(issued.userId)
    pool.phoneIds.push(issued.phoneId)
    pool.codes.push(issued.code)
  }
  const sandbox = await loginOrCreate({ phone_number: SANDBOX_PHONE_NUMBER }, { project: TEST_PROJECT })
  expect(sandbox.status).toBe(200)
  pool.sandboxPhoneId = String(sandbox.body.phone_id)
  return pool
}

/**
 * Whether the Worker treats this Content-Type as JSON (src/middleware/validate.ts). Header values
 * reach it trimmed, as fetch normalises them.
 */
export function isJsonContentType(type: string | undefined): boolean {
  return /^application\/json\s*(;|$)/i.test((type ?? '').trim())
}

/** The body the Worker parsed (JSON.parse keeps the last of duplicate keys, as the Worker does). */
export function parsedBody(body: string | Uint8Array | undefined): Record<string, unknown> {
  // The Worker reads bodies as UTF-8, which drops a leading byte order mark; so does this.
  const text = (typeof body === 'string' ? body : new TextDecoder().decode(body)).replace(/^\uFEFF/, '')
  return JSON.parse(text) as Record<string, unknown>
}

/** A POST of a JSON body to `path` with generated credentials, content type and body. */
export function jsonRequest(path: string, body: fc.Arbitrary<string | Uint8Array>) {
  return fc.record({ creds: credentials(TEST_PROJECT), type: contentType, body }).map(({ creds, type, body }) => {
    const headers: Record<string, string> = {}
    if (creds.header !== undefined) headers.authorization = creds.header
    if (type !== undefined) headers['content-type'] = type
    const request: FuzzRequest = { method: 'POST', path, headers, body }
    return { request, validCredentials: creds.valid, jsonType: isJsonContentType(type) }
  })
}

/** The checks shared by every JSON route: shape, the order of the gates, and no change on rejection. */
export async function checkJsonRoute(
  input: { request: FuzzRequest; validCredentials: boolean; jsonType: boolean },
  accepted: (o: Outcome, body: Record<string, unknown>) => void,
  rejectionMayChange: (o: Outcome, errorType: string) => readonly string[] = () => [],
): Promise<Outcome> {
  const o = await exchange(input.request)
  const errorType = expectWellFormed(o)
  if (!input.validCredentials) expect(errorType).toBe('unauthorized_credentials')
  else if (!input.jsonType) expect(errorType).toBe('unsupported_media_type')
  if (errorType === null) {
    expect(input.validCredentials && input.jsonType).toBe(true)
    accepted(o, parsedBody(input.request.body))
  } else {
    expectNothingChanged(o, rejectionMayChange(o, errorType))
  }
  return o
}
