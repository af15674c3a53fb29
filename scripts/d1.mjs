// Runs SQL and migrations against the D1 database through wrangler: local state by default, the
// deployed database with `remote: true` (of the wrangler environment `configEnv`, e.g. "production",
// when given). Shared by the dev set-up, the Node-side test server and the operator scripts.
import { execFileSync } from 'node:child_process'

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
 * `sql` (or the statements in `file`); with `json`, wrangler's JSON result (one entry per statement).
 * @param {D1Target & { sql?: string, file?: string, json?: boolean }} options
 * @returns {any}
 */
export function d1Execute({ sql, file, remote = false, json = false, persistTo, env, configEnv }) {
  const args = ['d1', 'execute', 'DB', '--yes']
  if (file) args.push(`--file=${file}`)
  if (sql) args.push(`--command=${sql}`)
  if (json) args.push('--json')
  const out = wrangler(args, { env, configEnv, remote, persistTo })
  return json ? JSON.parse(out) : out
}

/**
 * Applies the migrations in migrations/ (wrangler.toml `migrations_dir`) that the database has not
 * recorded in its d1_migrations table yet, in file-name order. Without a terminal wrangler skips its
 * confirmation prompt.
 * @param {D1Target} [target]
 */
export function d1MigrationsApply({ remote = false, persistTo, env, configEnv } = {}) {
  return wrangler(['d1', 'migrations', 'apply', 'DB'], { env, configEnv, remote, persistTo })
}

/** A SQL string literal. */
export const lit = (/** @type {unknown} */ value) => `'${String(value).replaceAll("'", "''")}'`
