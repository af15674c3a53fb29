// Runs SQL against the D1 database through wrangler: local state by default, the deployed database
// with `remote: true`. Shared by the dev set-up and the project scripts.
import { execFileSync } from 'node:child_process'

export function d1Execute({ sql, file, remote = false, json = false, persistTo, env }) {
  const args = ['d1', 'execute', 'DB', remote ? '--remote' : '--local', '--yes']
  if (persistTo && !remote) args.push('--persist-to', persistTo)
  if (file) args.push(`--file=${file}`)
  if (sql) args.push(`--command=${sql}`)
  if (json) args.push('--json')
  const out = execFileSync('wrangler', args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false', ...(env ?? process.env) },
  })
  return json ? JSON.parse(out) : out
}

/** A SQL string literal. */
export const lit = (value) => `'${String(value).replaceAll("'", "''")}'`
