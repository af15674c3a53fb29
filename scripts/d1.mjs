// Runs SQL against the D1 database through wrangler (local state by default, --remote for the
// deployed database). Shared by the dev set-up and the project scripts.
import { execFileSync } from 'node:child_process'

export function d1Execute({ sql, file, remote = false, json = false }) {
  const args = ['d1', 'execute', 'DB', remote ? '--remote' : '--local', '--yes']
  if (file) args.push(`--file=${file}`)
  if (sql) args.push(`--command=${sql}`)
  if (json) args.push('--json')
  const out = execFileSync('wrangler', args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
  })
  return json ? JSON.parse(out) : out
}

/** SQL string literal. */
export const lit = (value) => `'${String(value).replaceAll("'", "''")}'`
