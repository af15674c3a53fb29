// Runs SQL and migrations against the D1 databases through wrangler: local state by default, the
// deployed databases with `remote: true` (of the wrangler environment `configEnv`, e.g. "production",
// when given). Shared by the dev set-up, the Node-side test server and the operator scripts.
//
// A deployment's projects live on D1 shards (docs/scaling.md): the binding DB is shard 0 and the
// directory (every project's record, with the shard holding its rows), DB_1, DB_2, … are the others.
// `binding` picks the database a statement runs in (DB unless given).
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse as parseToml } from 'smol-toml'

/**
 * The shard bindings of a wrangler environment (the top level when `configEnv` is undefined), in
 * shard order: DB, DB_1, DB_2, … A gap in the numbering is an error: shard N is the binding DB_N.
 * wrangler.toml is read with a TOML parser rather than wrangler's own config reader: importing
 * wrangler costs a process about 2 s of CPU, and every operator script and Node-side test process
 * asks for the shards. (d1_databases is not inherited by an environment, so an environment's list is
 * its own, as wrangler reads it.)
 * @param {string | undefined} configEnv
 * @returns {string[]}
 */
export function shardBindings(configEnv) {
  /** @type {any} */
  const config = parseToml(readFileSync('wrangler.toml', 'utf8'))
  const scope = configEnv === undefined ? config : config.env?.[configEnv]
  if (!scope) throw new Error(`wrangler.toml has no [env.${configEnv}]`)
  /** @type {{ binding: string }[]} */
  const databases = scope.d1_databases ?? []
  const numbers = databases
    .flatMap((d) => {
      const match = /^DB(?:_([1-9][0-9]*))?$/.exec(d.binding)
      return match ? [Number(match[1] ?? 0)] : []
    })
    .sort((a, b) => a - b)
  numbers.forEach((n, i) => {
    if (n !== i)
      throw new Error(`wrangler.toml: shard bindings must be DB, DB_1, DB_2, … without gaps (DB_${i} is missing)`)
  })
  return numbers.map((n) => (n === 0 ? 'DB' : `DB_${n}`))
}

/**
 * Where the SQL runs: local state (wrangler's default directory, or `persistTo`) unless `remote`;
 * `configEnv` picks a wrangler environment's database; `env` replaces the process environment.
 * @typedef {{ remote?: boolean, persistTo?: string, configEnv?: string, env?: NodeJS.ProcessEnv }} D1Target
 */

/**
 * @param {string[]} args
 * @param {D1Target} target
 */
function wrangler(args, { env, configEnv, remote, persistTo }) {
  args.push(remote ? '--remote' : '--local')
  if (persistTo && !remote) args.push('--persist-to', persistTo)
  if (configEnv) args.push('--env', configEnv)
  return execFileSync('wrangler', args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false', ...(env ?? process.env) },
  })
}

/**
 * `sql` (or the statements in `file`) in the database of `binding` (DB, shard 0 and the directory,
 * unless given); with `json`, wrangler's JSON result (one entry per statement).
 * @param {D1Target & { sql?: string, file?: string, json?: boolean, binding?: string }} options
 * @returns {any}
 */
export function d1Execute({ sql, file, remote = false, json = false, persistTo, env, configEnv, binding = 'DB' }) {
  const args = ['d1', 'execute', binding, '--yes']
  if (file) args.push(`--file=${file}`)
  if (sql) args.push(`--command=${sql}`)
  if (json) args.push('--json')
  const out = wrangler(args, { env, configEnv, remote, persistTo })
  return json ? JSON.parse(out) : out
}

/**
 * Applies to every shard the migrations in migrations/ (wrangler.toml `migrations_dir`) that it has
 * not recorded in its d1_migrations table yet, in file-name order, shard 0 first. Without a terminal
 * wrangler skips its confirmation prompt. Returns wrangler's output per binding.
 * @param {D1Target} [target]
 */
export function d1MigrationsApply({ remote = false, persistTo, env, configEnv } = {}) {
  return shardBindings(configEnv).map((binding) => ({
    binding,
    output: wrangler(['d1', 'migrations', 'apply', binding], { env, configEnv, remote, persistTo }),
  }))
}

/**
 * The migrations a shard has not applied yet (their file names), as `wrangler d1 migrations list` reports them.
 * @param {D1Target & { binding: string }} options
 */
export function d1MigrationsPending({ binding, remote = false, persistTo, env, configEnv }) {
  const out = wrangler(['d1', 'migrations', 'list', binding], { env, configEnv, remote, persistTo })
  return [...out.matchAll(/\b([0-9]{4}_[A-Za-z0-9_-]+\.sql)\b/g)].map((m) => m[1])
}

/** Where wrangler keeps the local D1 databases of a state directory (its default: .wrangler/state). */
const localD1Dir = (/** @type {string | undefined} */ persistTo) => join(persistTo ?? '.wrangler/state', 'v3', 'd1')
/** Written beside the local databases once they are migrated: the fingerprint they were migrated to. */
const STAMP_FILE = '.migrations-applied'

/** The file names in migrations/, in the order wrangler applies them. */
const migrationFiles = () =>
  readdirSync('migrations')
    .filter((f) => f.endsWith('.sql'))
    .sort()

/** The migrations in migrations/ (names and contents) and the shard bindings, as one hash. */
function migrationsFingerprint() {
  const hash = createHash('sha256').update(JSON.stringify(shardBindings(undefined)))
  for (const name of migrationFiles()) hash.update(name).update(readFileSync(join('migrations', name)))
  return hash.digest('hex')
}

/** Whether the local D1 directory `dir` holds every shard, migrated to `fingerprint` by d1MigrationsEnsureLocal. */
function migratedTo(dir, fingerprint) {
  const stamp = join(dir, STAMP_FILE)
  if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== fingerprint) return false
  const objects = join(dir, 'miniflare-D1DatabaseObject')
  return (
    existsSync(objects) &&
    readdirSync(objects).filter((f) => f.endsWith('.sqlite')).length >= shardBindings(undefined).length
  )
}

/**
 * Local state only: what d1MigrationsApply does, skipped when this state directory was already
 * migrated to exactly the migrations in migrations/ (a fingerprint of their names and contents,
 * stamped beside the databases by the last run here). Each `wrangler d1 migrations apply` costs a
 * wrangler start per shard even when nothing is pending, and the local scripts (`npm run dev`,
 * `project:*`, `session-keys:*`) migrate before every run. A fresh state directory starts as a copy of
 * `D1_MIGRATED_TEMPLATE` when that variable names a state directory migrated the same way (the
 * Node-side test runner migrates one and every test server and script state starts from it); nothing
 * else sets it. `npm run db:migrate` always asks wrangler.
 * @param {{ persistTo?: string, env?: NodeJS.ProcessEnv }} [target]
 */
export function d1MigrationsEnsureLocal({ persistTo, env } = {}) {
  const fingerprint = migrationsFingerprint()
  const dir = localD1Dir(persistTo)
  if (migratedTo(dir, fingerprint)) return
  const template = (env ?? process.env).D1_MIGRATED_TEMPLATE
  if (
    template &&
    !existsSync(join(dir, 'miniflare-D1DatabaseObject')) &&
    migratedTo(localD1Dir(template), fingerprint)
  ) {
    cpSync(localD1Dir(template), dir, { recursive: true })
    return
  }
  d1MigrationsApply({ persistTo, env })
  writeFileSync(join(dir, STAMP_FILE), fingerprint)
}

/**
 * A new local state directory holding every shard at the schema the migrations build, for the test
 * runner's template. Instead of applying the migrations one by one (about 10 s of CPU per shard),
 * each shard gets schema.sql, which test/migrations.test.ts holds equal to what the migrations build,
 * and wrangler's d1_migrations table (created as `wrangler d1 migrations apply` creates it, and as
 * scripts/db-baseline.sql does) recording every migration as applied, in one `wrangler d1 execute`
 * (about 2 s). The migrations themselves are tested in workerd; the template is stamped as
 * d1MigrationsEnsureLocal stamps a state it migrated.
 * @param {string} persistTo
 * @param {NodeJS.ProcessEnv} [env]
 */
export function d1MigratedTemplate(persistTo, env) {
  const file = join(persistTo, 'template.sql')
  mkdirSync(persistTo, { recursive: true })
  writeFileSync(
    file,
    `${readFileSync('schema.sql', 'utf8')}
CREATE TABLE IF NOT EXISTS d1_migrations(
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  name       TEXT UNIQUE,
  applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
);
INSERT INTO d1_migrations (name) VALUES ${migrationFiles()
      .map((n) => `(${lit(n)})`)
      .join(', ')};
`,
  )
  // One shard after the other: two wrangler runs at once on one state directory can meet SQLITE_BUSY
  // on the state's shared files.
  for (const binding of shardBindings(undefined)) {
    d1Execute({ file, persistTo, env, binding })
  }
  writeFileSync(join(localD1Dir(persistTo), STAMP_FILE), migrationsFingerprint())
}

/** A SQL string literal. */
export const lit = (/** @type {unknown} */ value) => `'${String(value).replaceAll("'", "''")}'`
