// `npm run dev` runs this first: local secrets, the schema, and the documented local test project.
// Idempotent: safe on every start.
import { createHash } from 'node:crypto'
import { copyFileSync, existsSync } from 'node:fs'
import { d1Execute, lit } from './d1.mjs'

export const LOCAL_PROJECT_ID = 'project-test-00000000-0000-4000-8000-000000000000'
export const LOCAL_PROJECT_SECRET = 'secret-test-local-development-only-0000000000'

if (!existsSync('.dev.vars')) {
  copyFileSync('.dev.vars.example', '.dev.vars')
  console.log('created .dev.vars from .dev.vars.example (local development values)')
}

if (process.argv.includes('--vars-only')) process.exit(0)

d1Execute({ file: 'schema.sql' })
const hash = createHash('sha256').update(LOCAL_PROJECT_SECRET).digest('hex')
d1Execute({
  sql: `INSERT INTO projects (id, env, name, secret_hash, settings, created_at) VALUES (${lit(LOCAL_PROJECT_ID)}, 'test', 'Local development', ${lit(hash)}, '{}', ${Date.now()}) ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash`,
})
console.log(`local test project ready: ${LOCAL_PROJECT_ID} (secret in README; local only)`)
