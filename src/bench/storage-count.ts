/**
 * Opt-in storage accounting for the benchmark (`npm run bench`). It wraps the fetch and queue
 * handlers of the bench's own entry point (src/bench/entry.ts) only: the production entry,
 * src/index.ts, never loads it. Only when that Worker runs with the variable BENCH_COUNT_STORAGE=1
 * (passed by the bench with `wrangler dev --var`; wrangler.toml does not declare it) is every request
 * given a copy of its bindings that counts D1 round trips (each one a transaction), KV
 * reads/writes/deletes and queue sends, reported in the response header X-Storage-Ops, the rows D1
 * read and wrote, in X-D1-Rows, the D1 statements run, in X-D1-Statements, and the console lines the
 * request wrote, in X-Log-Lines. The queue consumer's batches are counted alike and summed, read and
 * reset through DELIVERY_COUNTS_PATH. Otherwise the request goes straight to the app: one property read.
 */

import { AsyncLocalStorage } from 'node:async_hooks'
import { findProject } from '../db/projects'
import { projectDb } from '../db/shard'
import { HISTORY_PATH, seedHistory } from './history'
import { SEARCH_USERS_PATH, seedSearchUsers } from './search'

export const STORAGE_OPS_HEADER = 'X-Storage-Ops'

/**
 * D1's own cost figures (its billing units) summed over the request, and the time its D1 calls took:
 * `read=…, written=…, ms=…`.
 */
export const D1_ROWS_HEADER = 'X-D1-Rows'

/** D1 statements the request ran: each statement of a batch, and each statement run on its own. */
export const D1_STATEMENTS_HEADER = 'X-D1-Statements'

/** Lines the request wrote to the console (console.log, info, warn, error, debug). */
export const LOG_LINES_HEADER = 'X-Log-Lines'

/**
 * The queue consumer's work since the last reset, summed over its batches: `GET` reads it as JSON
 * (DeliveryCounts), `POST` reads it and starts again from zero.
 */
export const DELIVERY_COUNTS_PATH = '/__bench/delivery-counts'

/**
 * Rows D1 reported reading and writing (D1Result.meta.rows_read / rows_written) for one request, and
 * the milliseconds from sending each batch or statement to its result, summed (D1 runs one query at a
 * time, so with one request in flight this is how long the request kept the database busy).
 */
export interface D1Rows {
  read: number
  written: number
  ms: number
}

/** Operations one request made, by kind. A D1 `batch()` is one round trip, as is each statement run. */
export interface StorageCounts {
  d1: number
  kv_read: number
  kv_write: number
  kv_delete: number
  queue_send: number
}

/** Besides the storage operations and rows: D1 statements and console lines. */
export interface WorkCounts {
  statements: number
  logs: number
}

/** What the queue consumer did since the last reset: batches, messages and, summed, their work. */
export interface DeliveryCounts extends StorageCounts, WorkCounts {
  batches: number
  messages: number
  rows_read: number
  rows_written: number
}

type FetchHandler = (request: Request, env: Env, ctx: ExecutionContext) => Response | Promise<Response>
type QueueHandler = (batch: MessageBatch, env: Env, ctx: ExecutionContext) => void | Promise<void>
type Method = (...args: unknown[]) => unknown

/** True only when the dev-only variable is set to exactly "1". */
export function storageCountingEnabled(env: Env): boolean {
  // Not part of Env on purpose (see above): read without widening the type of every binding.
  return (env as Partial<Record<'BENCH_COUNT_STORAGE', unknown>>).BENCH_COUNT_STORAGE === '1'
}

/** Wraps a fetch handler: counting when enabled, the handler itself otherwise. */
export function withStorageCounting(handler: FetchHandler): FetchHandler {
  return async (request, env, ctx) => {
    if (!storageCountingEnabled(env)) return handler(request, env, ctx)
    const path = new URL(request.url).pathname
    if (path === DELIVERY_COUNTS_PATH) return deliveryCountsRoute(request)
    const seed = request.method === 'POST' ? SEEDS.get(path) : undefined
    if (seed) return seedRoute(request, env, seed)
    const { env: counted, counts, rows, work } = countingBindings(env)
    const res = await countingLogLines(work, () => handler(request, counted, ctx))
    const headers = new Headers(res.headers)
    headers.set(STORAGE_OPS_HEADER, formatCounts(counts))
    headers.set(D1_ROWS_HEADER, `read=${rows.read}, written=${rows.written}, ms=${rows.ms.toFixed(2)}`)
    headers.set(D1_STATEMENTS_HEADER, String(work.statements))
    headers.set(LOG_LINES_HEADER, String(work.logs))
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers })
  }
}

const emptyDeliveryCounts = (): DeliveryCounts => ({
  batches: 0,
  messages: 0,
  d1: 0,
  kv_read: 0,
  kv_write: 0,
  kv_delete: 0,
  queue_send: 0,
  rows_read: 0,
  rows_written: 0,
  statements: 0,
  logs: 0,
})

// Per isolate: under `wrangler dev` the queue consumer runs in the isolate that serves the requests.
let delivery = emptyDeliveryCounts()

/** Wraps the queue handler: when counting is enabled, each batch's work is added to the totals. */
export function withDeliveryCounting(handler: QueueHandler): QueueHandler {
  return async (batch, env, ctx) => {
    if (!storageCountingEnabled(env)) return handler(batch, env, ctx)
    const { env: counted, counts, rows, work } = countingBindings(env)
    try {
      await countingLogLines(work, () => handler(batch, counted, ctx))
    } finally {
      delivery.batches++
      delivery.messages += batch.messages.length
      for (const kind of Object.keys(counts) as (keyof StorageCounts)[]) delivery[kind] += counts[kind]
      delivery.rows_read += rows.read
      delivery.rows_written += rows.written
      delivery.statements += work.statements
      delivery.logs += work.logs
    }
  }
}

function deliveryCountsRoute(request: Request): Response {
  const totals = delivery
  if (request.method === 'POST') delivery = emptyDeliveryCounts()
  return Response.json(totals)
}

const logLines = new AsyncLocalStorage<WorkCounts>()
const CONSOLE_METHODS = ['log', 'info', 'warn', 'error', 'debug'] as const
let consoleCounted = false

/**
 * Runs `fn` counting the console lines it writes into `work.logs`. The console methods are wrapped
 * once per isolate (only once counting is enabled), and count for the request or batch they run in.
 */
function countingLogLines<T>(work: WorkCounts, fn: () => T | Promise<T>): Promise<T> {
  if (!consoleCounted) {
    consoleCounted = true
    for (const name of CONSOLE_METHODS) {
      const original = console[name].bind(console)
      console[name] = (...args: unknown[]) => {
        const counts = logLines.getStore()
        if (counts) counts.logs++
        original(...args)
      }
    }
  }
  return logLines.run(work, async () => await fn())
}

type Seed = (db: D1Database, projectId: string, from: number, total: number) => Promise<void>

/** The bench's seeding routes: the history (src/bench/history.ts) and the search users (src/bench/search.ts). */
const SEEDS = new Map<string, Seed>([
  [HISTORY_PATH, (db, projectId, from, total) => seedHistory(db, projectId, from, total, Date.now())],
  [SEARCH_USERS_PATH, seedSearchUsers],
])

/** A seeding route's request, `{ project_id, from, total }`: items `from` … `total` - 1 are written. */
async function seedRoute(request: Request, env: Env, seed: Seed): Promise<Response> {
  const body = (await request.json()) as { project_id?: unknown; from?: unknown; total?: unknown }
  const { project_id: projectId, from, total } = body
  if (typeof projectId !== 'string' || !Number.isSafeInteger(from) || !Number.isSafeInteger(total)) {
    return Response.json({ error: 'project_id, from and total expected' }, { status: 400 })
  }
  // Into the project's own shard, as its requests will read it.
  const project = await findProject(env.DB, projectId, Date.now())
  if (!project) return Response.json({ error: 'no such project' }, { status: 404 })
  await seed(projectDb(env, project), projectId, from as number, total as number)
  return Response.json({ seeded: total })
}

/** `d1=1, kv_read=0, …`: the header value, parsed back by parseCounts. */
export function formatCounts(counts: StorageCounts): string {
  return Object.entries(counts)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ')
}

/** The counts in an X-Storage-Ops header value, or null if it is absent or malformed. */
export function parseCounts(header: string | null): StorageCounts | null {
  if (!header) return null
  const counts: StorageCounts = { d1: 0, kv_read: 0, kv_write: 0, kv_delete: 0, queue_send: 0 }
  for (const part of header.split(',')) {
    const match = /^\s*([a-z0-9_]+)=([0-9]+)\s*$/.exec(part)
    if (!match?.[1] || !match[2] || !(match[1] in counts)) return null
    counts[match[1] as keyof StorageCounts] = Number(match[2])
  }
  return counts
}

/** The rows of an X-D1-Rows header value, or null if it is absent or malformed. */
export function parseRows(header: string | null): D1Rows | null {
  const match = /^read=([0-9]+), written=([0-9]+), ms=([0-9]+(?:\.[0-9]+)?)$/.exec(header ?? '')
  return match ? { read: Number(match[1]), written: Number(match[2]), ms: Number(match[3]) } : null
}

/**
 * A copy of env whose D1, KV and Queue bindings (recognised by their methods, so bindings added
 * later are counted too) count each call; every other value is passed through untouched. D1's
 * reported rows are summed from every result that carries meta (batch, run, all, and first, which
 * is run as all); raw() results carry none and are not in the sum.
 */
export function countingBindings(env: Env): { env: Env; counts: StorageCounts; rows: D1Rows; work: WorkCounts } {
  const counts: StorageCounts = { d1: 0, kv_read: 0, kv_write: 0, kv_delete: 0, queue_send: 0 }
  const rows: D1Rows = { read: 0, written: 0, ms: 0 }
  const work: WorkCounts = { statements: 0, logs: 0 }
  const timed = async <R>(call: () => Promise<R>): Promise<R> => {
    const start = performance.now()
    try {
      return await call()
    } finally {
      rows.ms += performance.now() - start
    }
  }
  const addRows = (result: unknown) => {
    const meta = isObject(result) ? (Reflect.get(result, 'meta') as Partial<D1Meta> | undefined) : undefined
    rows.read += meta?.rows_read ?? 0
    rows.written += meta?.rows_written ?? 0
  }
  const bump = (kind: keyof StorageCounts) => () => {
    counts[kind]++
  }
  // A round trip of `statements` statements.
  const roundTrip = (statements: number) => {
    counts.d1++
    work.statements += statements
  }
  const wrapped: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(env)) {
    if (!isObject(value)) wrapped[name] = value
    else if (hasMethods(value, 'prepare', 'batch')) wrapped[name] = countD1(value, roundTrip, addRows, timed)
    else if (hasMethods(value, 'get', 'put', 'delete', 'list')) {
      wrapped[name] = counting(value, {
        get: bump('kv_read'),
        getWithMetadata: bump('kv_read'),
        list: bump('kv_read'),
        put: bump('kv_write'),
        delete: bump('kv_delete'),
      })
    } else if (hasMethods(value, 'send', 'sendBatch')) {
      wrapped[name] = counting(value, { send: bump('queue_send'), sendBatch: bump('queue_send') })
    } else wrapped[name] = value
  }
  return { env: wrapped as unknown as Env, counts, rows, work }
}

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null
}

function hasMethods(value: object, ...names: string[]): boolean {
  return names.every((name) => typeof Reflect.get(value, name) === 'function')
}

/** A proxy calling `onCall[name]` before each listed method; everything else passes through. */
function counting<T extends object>(target: T, onCall: Record<string, () => void>): T {
  return new Proxy(target, {
    get(obj, prop) {
      const value: unknown = Reflect.get(obj, prop)
      if (typeof value !== 'function') return value
      const before = typeof prop === 'string' ? onCall[prop] : undefined
      const method = value as Method
      return (...args: unknown[]) => {
        before?.()
        return method.apply(obj, args)
      }
    },
  })
}

/**
 * D1: batch() and exec() are round trips; so is running a prepared (possibly bound) statement.
 * `roundTrip` is told how many statements each one ran; `onResult` sees every D1Result, for the rows
 * D1 reports.
 */
type Timer = <R>(call: () => Promise<R>) => Promise<R>

function countD1<T extends object>(
  db: T,
  roundTrip: (statements: number) => void,
  onResult: (result: unknown) => void,
  timed: Timer,
): T {
  const originals = new WeakMap<object, object>()
  const unwrap = (stmt: unknown) => (isObject(stmt) ? (originals.get(stmt) ?? stmt) : stmt)
  const statement = (stmt: object): object => {
    const proxy = new Proxy(stmt, {
      get(obj, prop) {
        const value: unknown = Reflect.get(obj, prop)
        if (typeof value !== 'function') return value
        const method = value as Method
        if (prop === 'bind') return (...args: unknown[]) => statement(method.apply(obj, args) as object)
        if (prop === 'run' || prop === 'all') {
          return async (...args: unknown[]) => {
            roundTrip(1)
            const result = await timed(() => method.apply(obj, args) as Promise<unknown>)
            onResult(result)
            return result
          }
        }
        // first() is all() and its first row (or one column of it), so its rows are counted too.
        if (prop === 'first') {
          const all = Reflect.get(obj, 'all') as Method
          return async (column?: string) => {
            roundTrip(1)
            const result = (await timed(() => all.apply(obj, []) as Promise<unknown>)) as D1Result<
              Record<string, unknown>
            >
            onResult(result)
            const row = result.results[0]
            if (row === undefined) return null
            if (column === undefined) return row
            if (!(column in row)) throw new Error(`D1_COLUMN_NOTFOUND: Column not found (${column})`)
            return row[column]
          }
        }
        return (...args: unknown[]) => {
          if (prop === 'raw') roundTrip(1)
          return method.apply(obj, args)
        }
      },
    })
    originals.set(proxy, stmt)
    return proxy
  }
  return new Proxy(db, {
    get(obj, prop) {
      const value: unknown = Reflect.get(obj, prop)
      if (typeof value !== 'function') return value
      const method = value as Method
      if (prop === 'prepare') return (...args: unknown[]) => statement(method.apply(obj, args) as object)
      // The statements of a batch are proxies: hand D1 the real ones (it checks their type).
      if (prop === 'batch') {
        return async (stmts: unknown[]) => {
          roundTrip(stmts.length)
          const results = await timed(() => method.call(obj, stmts.map(unwrap)) as Promise<unknown[]>)
          for (const result of results) onResult(result)
          return results
        }
      }
      if (prop === 'exec') {
        return (...args: unknown[]) => {
          roundTrip(1)
          return method.apply(obj, args)
        }
      }
      if (prop === 'withSession') {
        return (...args: unknown[]) => countD1(method.apply(obj, args) as object, roundTrip, onResult, timed)
      }
      return value.bind(obj)
    },
  })
}
