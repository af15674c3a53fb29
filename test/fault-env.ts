/**
 * Bindings that fail on purpose, for the fault-injection tests. Each wraps the real binding and
 * breaks exactly one thing, so a test can say which failure it survived.
 */

/** A statement that compiles but fails while it runs (integer overflow), as a D1 error mid-batch would. */
const FAILING_SQL = 'SELECT abs(-9223372036854775808) AS boom'

/** Passes every property through, binding methods to the real target. */
function passThrough<T extends object>(target: T, prop: string | symbol, receiver: unknown): unknown {
  const value = Reflect.get(target, prop, receiver)
  return typeof value === 'function' ? value.bind(target) : value
}

/**
 * D1 whose `batchIndex`-th batch (0-based; default the first) gets a statement that fails at run
 * time inserted before statement `position`: the statements before it have run inside the
 * transaction when it fails, so only rollback keeps them out. `position: 'throw'` makes the batch
 * call itself reject before anything runs (a lost connection). Later batches work.
 */
export function failingBatchDb(
  base: D1Database,
  position: number | 'throw',
  batchIndex = 0,
): { db: D1Database; batches: () => number; lengths: number[] } {
  let batches = 0
  const lengths: number[] = []
  const db = new Proxy(base, {
    get(target, prop, receiver) {
      if (prop !== 'batch') return passThrough(target, prop, receiver)
      return (statements: D1PreparedStatement[]) => {
        const index = batches++
        lengths.push(statements.length)
        if (index !== batchIndex) return target.batch(statements)
        if (position === 'throw') return Promise.reject(new Error('D1_ERROR: Network connection lost.'))
        const failing = target.prepare(FAILING_SQL)
        return target.batch([...statements.slice(0, position), failing, ...statements.slice(position)])
      }
    },
  })
  return { db, batches: () => batches, lengths }
}

/**
 * D1 whose `batchIndex`-th batch (0-based) waits before it runs: `paused` resolves when the request
 * reaches it, and the batch runs once `resume()` is called. A test runs another request to completion
 * in between, so two requests interleave in exactly that order, with no timer deciding it.
 */
export function pausingBatchDb(
  base: D1Database,
  batchIndex: number,
): { db: D1Database; paused: Promise<void>; resume: () => void } {
  let batches = 0
  let reached = () => {}
  let resume = () => {}
  const paused = new Promise<void>((resolve) => {
    reached = resolve
  })
  const resumed = new Promise<void>((resolve) => {
    resume = resolve
  })
  const db = new Proxy(base, {
    get(target, prop, receiver) {
      if (prop !== 'batch') return passThrough(target, prop, receiver)
      return async (statements: D1PreparedStatement[]) => {
        if (batches++ === batchIndex) {
          reached()
          await resumed
        }
        return target.batch(statements)
      }
    },
  })
  return { db, paused, resume }
}

/** D1 whose calls fail for SQL matching `pattern`: a statement run alone (first/run/all/raw), or a batch carrying one. */
export function failingStatementDb(base: D1Database, pattern: RegExp, times = Infinity): D1Database {
  let failures = 0
  // Each wrapped statement's SQL and the real statement, for a batch that carries it.
  const wrapped = new WeakMap<object, { sql: string; stmt: D1PreparedStatement }>()
  const fail = () => Promise.reject(new Error('D1_ERROR: Network connection lost.'))
  const wrap = (sql: string, stmt: D1PreparedStatement): D1PreparedStatement => {
    const proxy = new Proxy(stmt, {
      get(target, prop, receiver) {
        if (prop === 'bind') return (...args: unknown[]) => wrap(sql, target.bind(...args))
        if ((prop === 'first' || prop === 'run' || prop === 'all' || prop === 'raw') && pattern.test(sql)) {
          if (failures < times) {
            failures++
            return fail
          }
        }
        return passThrough(target, prop, receiver)
      },
    })
    wrapped.set(proxy, { sql, stmt })
    return proxy
  }
  return new Proxy(base, {
    get(target, prop, receiver) {
      if (prop === 'prepare') return (sql: string) => wrap(sql, target.prepare(sql))
      // A batch carrying a matching statement fails whole, as D1 fails a batch (one transaction).
      if (prop === 'batch') {
        return (stmts: D1PreparedStatement[]) => {
          if (stmts.some((s) => pattern.test(wrapped.get(s)?.sql ?? '')) && failures < times) {
            failures++
            return fail()
          }
          return target.batch(stmts.map((s) => wrapped.get(s)?.stmt ?? s))
        }
      }
      return passThrough(target, prop, receiver)
    },
  })
}

export type KvOperation = 'get' | 'put' | 'delete' | 'list' | 'getWithMetadata'

/** KV whose listed operations reject, as the KV API does when it is unavailable. */
export function failingKv(base: KVNamespace, operations: readonly KvOperation[]): KVNamespace {
  return new Proxy(base, {
    get(target, prop, receiver) {
      if (typeof prop === 'string' && (operations as readonly string[]).includes(prop)) {
        return () => Promise.reject(new Error(`KV ${prop.toUpperCase()} failed: 503 Service Unavailable`))
      }
      return passThrough(target, prop, receiver)
    },
  })
}

/** A queue producer that is down: every send rejects. */
export function failingQueue(): Queue {
  const down = () => Promise.reject(new Error('Queue send failed: 503 Service Unavailable'))
  return { send: down, sendBatch: down, metrics: down }
}
