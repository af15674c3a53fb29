import { env } from 'cloudflare:workers'
import { expect } from 'vitest'
import { Batch } from '../src/db/batch'
import { ERRORS, type ErrorType } from '../src/errors'
import { basicAuth, call, countingEnv } from './helpers'
import { countingKv } from './otp-helpers'
import { expectNoSecrets } from './secrets'
import { capturingQueue } from './whatsapp-helpers'

/**
 * The measuring side of the fuzz tests: a complete picture of the storage a request could touch
 * (every D1 table's rows, the KV key list, and every KV write and queue send it made), taken around
 * one request, and the checks every reply must pass.
 */

/**
 * One table's row count and its rows serialised, in the order of that text (any changed value changes
 * it; a table need not have a rowid to order by).
 */
export interface TableState {
  rows: number
  content: string
}

export interface StorageSnapshot {
  tables: Record<string, TableState>
  kvKeys: string[]
  /** Each KV key's expiration (seconds since the epoch) as the listing reported it, when it has one. */
  kvExpirations: Record<string, number>
  /** When the KV listing was taken (ms). */
  takenAt: number
}

// Tables D1 or the test harness own; everything else is the service's.
const INTERNAL_TABLE = /^(sqlite_|_cf_|d1_migrations$)/

let snapshotStatements: { name: string; sql: string }[] | null = null

/** Reads the schema once per file: a digest statement per table, over all of its columns. */
async function statements(): Promise<{ name: string; sql: string }[]> {
  if (snapshotStatements) return snapshotStatements
  const tables = await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all<{
    name: string
  }>()
  const names = tables.results.map((t) => t.name).filter((name) => !INTERNAL_TABLE.test(name))
  const batch = new Batch()
  const columns = names.map(
    (name) =>
      [
        name,
        batch.add<{ name: string }>(env.DB.prepare('SELECT name FROM pragma_table_info(?1) ORDER BY cid').bind(name)),
      ] as const,
  )
  await batch.run(env.DB)
  snapshotStatements = columns.map(([name, handle]) => {
    const cols = handle.rows().map((c) => `quote("${c.name}")`)
    const row = cols.join(` || ',' || `)
    return {
      name,
      sql: `SELECT COUNT(*) AS rows, COALESCE(group_concat(r, char(10)), '') AS content
            FROM (SELECT ${row} AS r FROM "${name}" ORDER BY r)`,
    }
  })
  expect(snapshotStatements.length).toBeGreaterThan(5)
  return snapshotStatements
}

/** Every service table (one D1 batch) and every KV key. */
export async function snapshot(): Promise<StorageSnapshot> {
  const list = await statements()
  const batch = new Batch()
  const reads = list.map((s) => [s.name, batch.add<TableState>(env.DB.prepare(s.sql))] as const)
  await batch.run(env.DB)
  const tables: Record<string, TableState> = {}
  for (const [name, handle] of reads) {
    const row = handle.first()
    tables[name] = { rows: Number(row?.rows ?? -1), content: String(row?.content ?? '') }
  }
  const kvKeys: string[] = []
  const kvExpirations: Record<string, number> = {}
  let cursor: string | undefined
  do {
    const page = await env.OTP_KV.list(cursor ? { cursor } : {})
    for (const key of page.keys) {
      kvKeys.push(key.name)
      if (key.expiration !== undefined) kvExpirations[key.name] = key.expiration
    }
    cursor = page.list_complete ? undefined : page.cursor
  } while (cursor)
  return { tables, kvKeys: kvKeys.sort(), kvExpirations, takenAt: Date.now() }
}

/** The tables whose rows differ between two snapshots, with their row counts before and after. */
export function changedTables(before: StorageSnapshot, after: StorageSnapshot): Record<string, [number, number]> {
  const changed: Record<string, [number, number]> = {}
  for (const [name, state] of Object.entries(after.tables)) {
    const old = before.tables[name]
    if (!old || old.content !== state.content) changed[name] = [old?.rows ?? 0, state.rows]
  }
  return changed
}

/** A request as the fuzzers build it: everything raw, so nothing is normalised on the way in. */
export interface FuzzRequest {
  method: string
  path: string
  headers: Record<string, string>
  body?: string | Uint8Array
}

/** A reply with everything the request did to storage. */
/** An authenticated JSON POST of `body` to `path`, as a project's backend sends it. */
export function jsonPost(project: { id: string; secret: string }, path: string, body: unknown): FuzzRequest {
  return {
    method: 'POST',
    path,
    headers: { authorization: basicAuth(project), 'content-type': 'application/json' },
    body: JSON.stringify(body),
  }
}

export interface Outcome {
  request: FuzzRequest
  status: number
  headers: Headers
  text: string
  /** The parsed JSON body; null when the body is not JSON. */
  json: Record<string, unknown> | null
  before: StorageSnapshot
  after: StorageSnapshot
  queueSends: unknown[]
  kvPuts: string[]
  kvDeletes: string[]
}

/**
 * Sends one request to the Worker with counting bindings around `base` (by default the test
 * bindings with a queue that only records, so miniflare's consumer never runs in the background and
 * the outbox cannot change behind our back). The snapshots read the real bindings.
 */
export async function exchange(
  request: FuzzRequest,
  base: Env = { ...env, WHATSAPP_QUEUE: capturingQueue([]) },
): Promise<Outcome> {
  const before = await snapshot()
  const counting = countingEnv(base)
  const kv = countingKv(counting.env)
  const res = await call(request.method, request.path, {
    project: null,
    headers: request.headers,
    ...(request.body === undefined ? {} : { rawBody: request.body }),
    env: kv.env,
  })
  const text = await res.text()
  let json: Record<string, unknown> | null = null
  try {
    const parsed: unknown = JSON.parse(text)
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed))
      json = parsed as Record<string, unknown>
  } catch {
    json = null
  }
  const after = await snapshot()
  return {
    request,
    status: res.status,
    headers: res.headers,
    text,
    json,
    before,
    after,
    queueSends: counting.queueSends,
    kvPuts: counting.kvPuts,
    kvDeletes: kv.kvDeletes,
  }
}

function describeRequest(o: Outcome): string {
  const { method, path, headers, body } = o.request
  const shown = typeof body === 'string' ? JSON.stringify(body.slice(0, 300)) : `${body?.length ?? 0} bytes`
  return `${method} ${path} ${JSON.stringify(headers).slice(0, 300)} body=${shown} -> ${o.status} ${o.text.slice(0, 300)}`
}

/**
 * Every reply: never a 5xx, JSON, no secret and no stack trace in it, a request id that matches
 * X-Request-Id; an error reply is exactly Stytch's error object with a catalogued type whose status
 * is the reply's. `plainSuccess`: the route's 2xx is not a Stytch API object (the dev outbox), so it
 * carries no request_id or status_code. Returns the error type (null for a 2xx).
 */
export function expectWellFormed(o: Outcome, { plainSuccess = false } = {}): ErrorType | null {
  const where = describeRequest(o)
  expect(o.status, where).toBeGreaterThanOrEqual(200)
  expect(o.status, where).toBeLessThan(500)
  expect(o.headers.get('content-type'), where).toMatch(/^application\/json/)
  expect(o.json, where).not.toBeNull()
  expectNoSecrets(o.text, where, presentedAuthorization(o.request))
  expect(o.text, where).not.toMatch(/\n\s+at |\bat [\w.<>]+ \(|\.ts:\d+:\d+/)
  expect(o.headers.get('x-request-id'), where).toMatch(/^request-id-(test|live)-[0-9a-f-]{36}$/)
  if (o.status < 300 && plainSuccess) return null
  const body = o.json ?? {}
  expect(body.request_id, where).toBe(o.headers.get('x-request-id'))
  expect(body.status_code, where).toBe(o.status)
  if (o.status < 300) return null
  const keys = Object.keys(body).filter((k) => k !== 'error_details')
  expect(keys.sort(), where).toEqual(['error_message', 'error_type', 'error_url', 'request_id', 'status_code'])
  const errorType = body.error_type as ErrorType
  expect(Object.hasOwn(ERRORS, errorType), where).toBe(true)
  expect(ERRORS[errorType][0], where).toBe(o.status)
  expect(body.error_message, where).toEqual(expect.any(String))
  expect(body.error_url, where).toBe(`https://stytch.com/docs/api/errors/${o.status}#${errorType}`)
  return errorType
}

/** A 500: Stytch's internal_server_error, nothing about the failure itself, no stack trace. */
export function expectInternalError(o: Outcome): void {
  const where = describeRequest(o)
  expect(o.status, where).toBe(500)
  expect(o.json, where).toEqual({
    status_code: 500,
    request_id: o.headers.get('x-request-id'),
    error_type: 'internal_server_error',
    error_message: ERRORS.internal_server_error[1],
    error_url: 'https://stytch.com/docs/api/errors/500#internal_server_error',
  })
  expectNoSecrets(o.text, where)
}

/** A long presented Authorization header must not come back in the reply (short ones are noise). */
function presentedAuthorization(request: FuzzRequest): string[] {
  const header = Object.entries(request.headers).find(([name]) => name.toLowerCase() === 'authorization')?.[1]
  return header && header.trim().length >= 16 ? [header.trim()] : []
}

/**
 * A rejected request changed nothing: every table's rows, the KV key list, no KV write or delete,
 * no queue send. `mayChange` names tables a rejection may legitimately write (failure accounting).
 */
export function expectNothingChanged(o: Outcome, mayChange: readonly string[] = []): void {
  const where = describeRequest(o)
  const changed = changedTables(o.before, o.after)
  for (const name of mayChange) delete changed[name]
  // The project's session signing key is made on first use by whichever request needs it, even one
  // that then fails: provisioning, not request state. Only that first key may appear.
  const keys = changed.session_signing_keys
  if (keys && keys[0] === 0 && keys[1] === 1) delete changed.session_signing_keys
  expect(changed, where).toEqual({})
  // KV expires keys on the real clock, so on a slow machine another phone's code record (60-120 s of
  // life) can lapse between the two listings; such a key is no change made by this request. Writes
  // and deletes the request itself made are caught exactly by kvPuts and kvDeletes below.
  const lapsing = (name: string) => {
    const expiration = o.before.kvExpirations[name]
    return expiration !== undefined && expiration * 1000 <= o.after.takenAt + 2_000
  }
  expect(
    o.after.kvKeys.filter((k) => !lapsing(k)),
    where,
  ).toEqual(o.before.kvKeys.filter((k) => !lapsing(k)))
  expect(o.kvPuts, where).toEqual([])
  expect(o.kvDeletes, where).toEqual([])
  expect(o.queueSends, where).toEqual([])
}
