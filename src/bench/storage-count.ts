/**
 * Opt-in storage accounting for the benchmark (`npm run bench`). It wraps the fetch handler of the
 * bench's own entry point (src/bench/entry.ts) only: the production entry, src/index.ts, never loads
 * it. Only when that Worker runs with the variable BENCH_COUNT_STORAGE=1 (passed by the bench with
 * `wrangler dev --var`; wrangler.toml does not declare it) is every request given a copy of its bindings
 * that counts D1 round trips, KV reads/writes/deletes and queue sends, reported in the response
 * header X-Storage-Ops, and the rows D1 read and wrote, in X-D1-Rows. Otherwise the request goes
 * straight to the app: one property read.
 */

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

type FetchHandler = (request: Request, env: Env, ctx: ExecutionContext) => Response | Promise<Response>
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
    const seed = request.method === 'POST' ? SEEDS.get(new URL(request.url).pathname) : undefined
    if (seed) return seedRoute(request, env, seed)
    const { env: counted, counts, rows } = countingBindings(env)
    const res = await handler(request, counted, ctx)
    const headers = new Headers(res.headers)
    headers.set(STORAGE_OPS_HEADER, formatCounts(counts))
    headers.set(D1_ROWS_HEADER, `read=${rows.read}, written=${rows.written}, ms=${rows.ms.toFixed(2)}`)
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers })
  }
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
export function countingBindings(env: Env): { env: Env; counts: StorageCounts; rows: D1Rows } {
  const counts: StorageCounts = { d1: 0, kv_read: 0, kv_write: 0, kv_delete: 0, queue_send: 0 }
  const rows: D1Rows = { read: 0, written: 0, ms: 0 }
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
  const wrapped: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(env)) {
    if (!isObject(value)) wrapped[name] = value
    else if (hasMethods(value, 'prepare', 'batch')) wrapped[name] = countD1(value, bump('d1'), addRows, timed)
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
  return { env: wrapped as unknown as Env, counts, rows }
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
 * `onResult` sees every D1Result, for the rows D1 reports.
 */
type Timer = <R>(call: () => Promise<R>) => Promise<R>

function countD1<T extends object>(db: T, roundTrip: () => void, onResult: (result: unknown) => void, timed: Timer): T {
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
            roundTrip()
            const result = await timed(() => method.apply(obj, args) as Promise<unknown>)
            onResult(result)
            return result
          }
        }
        // first() is all() and its first row (or one column of it), so its rows are counted too.
        if (prop === 'first') {
          const all = Reflect.get(obj, 'all') as Method
          return async (column?: string) => {
            roundTrip()
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
          if (prop === 'raw') roundTrip()
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
          roundTrip()
          const results = await timed(() => method.call(obj, stmts.map(unwrap)) as Promise<unknown[]>)
          for (const result of results) onResult(result)
          return results
        }
      }
      if (prop === 'exec') {
        return (...args: unknown[]) => {
          roundTrip()
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
