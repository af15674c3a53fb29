// Local state for `npm run dev`: .dev.vars (local-only secrets), the schema, and the documented
// local test project. Idempotent: runs on every start.
import { createHash } from 'node:crypto'
import { copyFileSync, existsSync } from 'node:fs'
import { d1Execute, lit } from './d1.mjs'

export const LOCAL_PROJECT_ID = 'project-test-00000000-0000-4000-8000-000000000000'
export const LOCAL_PROJECT_SECRET = 'secret-test-local-development-only-0000000000'

export function ensureDevVars() {
  if (!existsSync('.dev.vars')) {
    copyFileSync('.dev.vars.example', '.dev.vars')
    console.log('created .dev.vars from .dev.vars.example (local development values)')
  }
}

export function setupLocal({ persistTo, env } = {}) {
  ensureDevVars()
  d1Execute({ file: 'schema.sql', persistTo, env })
  const hash = createHash('sha256').update(LOCAL_PROJECT_SECRET).digest('hex')
  d1Execute({
    persistTo,
    env,
    sql: `INSERT INTO projects (id, env, name, secret_hash, settings, created_at) VALUES (${lit(LOCAL_PROJECT_ID)}, 'test', 'Local development', ${lit(hash)}, '{}', ${Date.now()}) ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash`,
  })
  console.log(`local test project ready: ${LOCAL_PROJECT_ID} (local only; secret in README)`)
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv.includes('--vars-only')) ensureDevVars()
  else setupLocal()
}
