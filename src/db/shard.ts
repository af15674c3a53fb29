import { logEvent } from '../log'

/**
 * The one place that picks the D1 database holding a project's data: its users, phones, codes,
 * deliveries, sessions, signing keys and abuse-limit counters. A deployment has one or more such
 * databases (shards): shard 0 is the DB binding, which is also the directory (the projects table
 * every request authenticates against), and shard N is the binding DB_N (wrangler.toml). Which shard
 * holds a project is the `shard` column of its directory record (src/db/projects.ts): an explicit
 * assignment, so moving a project (src/shards/move.ts) changes one row, not a hash of every tenant.
 */

/** The binding name of shard `n`: DB for 0, DB_<n> otherwise. */
export function shardBinding(n: number): string {
  return n === 0 ? 'DB' : `DB_${n}`
}

function binding(env: Env, n: number): D1Database | undefined {
  const value = (env as unknown as Record<string, unknown>)[shardBinding(n)]
  return typeof value === 'object' && value !== null && 'prepare' in value ? (value as D1Database) : undefined
}

/** How many shards this Worker has: DB, DB_1, DB_2, … up to the first binding missing. */
export function shardCount(env: Env): number {
  let n = 1
  while (binding(env, n)) n += 1
  return n
}

/** Every shard's number, 0 first. */
export function shardNumbers(env: Env): number[] {
  return Array.from({ length: shardCount(env) }, (_, i) => i)
}

/**
 * The database of shard `n`. A project recorded on a shard this Worker has no binding for is a
 * deployment error (a binding removed, or a Worker older than the directory): it is logged as an
 * alert and the request fails, rather than reading another database.
 */
export function shardDb(env: Env, n: number): D1Database {
  const db = Number.isInteger(n) && n >= 0 ? binding(env, n) : undefined
  if (!db) {
    logEvent('error', 'shard.binding_missing', { shard: n, binding: shardBinding(n), alert: true })
    throw new Error(`no D1 binding ${shardBinding(n)} for shard ${n}`)
  }
  return db
}

/** The database holding the project's data (its directory record's shard). */
export function projectDb(env: Env, project: { shard: number }): D1Database {
  return shardDb(env, project.shard)
}

/** `env` as the code serving shard `n` sees it: DB is that shard's database. */
export function shardEnv(env: Env, n: number): Env {
  const db = shardDb(env, n)
  return db === env.DB ? env : { ...env, DB: db }
}

/**
 * `env` as the code that serves one project sees it: DB is that project's database (projectDb).
 * Request handlers get it from the project authentication middlewares, the queue consumer per job,
 * the status webhooks per delivery; the directory is read before, from the Worker's own env.
 */
export function projectEnv(env: Env, project: { shard: number }): Env {
  return shardEnv(env, project.shard)
}
