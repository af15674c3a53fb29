// Local state for `npm run dev`: .dev.vars (local-only secrets), the D1 migrations, and the documented
// local test project. Idempotent: runs on every start.
import { createHash } from 'node:crypto'
import { appendFileSync, copyFileSync, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { d1Execute, d1MigrationsEnsureLocal, lit } from './d1.mjs'

export const LOCAL_PROJECT_ID = 'project-test-00000000-0000-4000-8000-000000000000'
export const LOCAL_PROJECT_SECRET = 'secret-test-local-development-only-0000000000'
/** The local project's public token, for the frontend SDKs (README quick start). */
export const LOCAL_PUBLIC_TOKEN = 'public-token-test-00000000-0000-4000-8000-000000000000'

/** Creates or completes `<dir>/.dev.vars` from `<dir>/.dev.vars.example` (the service's, or the example app's). */
export function ensureDevVars(dir = '.') {
  const target = join(dir, '.dev.vars')
  const example = join(dir, '.dev.vars.example')
  if (!existsSync(target)) {
    copyFileSync(example, target)
    console.log(`created ${target} from ${example} (local development values)`)
    return
  }
  // A .dev.vars from before a new variable was added gets that variable (never overwrites a value).
  const names = (text) =>
    new Set(
      text
        .split('\n')
        .map((line) => /^([A-Z0-9_]+)=/.exec(line)?.[1])
        .filter(Boolean),
    )
  const have = names(readFileSync(target, 'utf8'))
  const missing = readFileSync(example, 'utf8')
    .split('\n')
    .filter((line) => /^[A-Z0-9_]+=/.test(line) && !have.has(line.slice(0, line.indexOf('='))))
  if (missing.length > 0) {
    const current = readFileSync(target, 'utf8')
    appendFileSync(target, `${current.endsWith('\n') ? '' : '\n'}${missing.join('\n')}\n`)
    console.log(`added to ${target} from ${example}: ${missing.map((l) => l.split('=')[0]).join(', ')}`)
  }
}

/** @param {{ persistTo?: string, env?: NodeJS.ProcessEnv }} [target] */
export function setupLocal({ persistTo, env } = {}) {
  ensureDevVars()
  d1MigrationsEnsureLocal({ persistTo, env })
  const hash = createHash('sha256').update(LOCAL_PROJECT_SECRET).digest('hex')
  d1Execute({
    persistTo,
    env,
    sql: `INSERT INTO projects (id, env, name, secret_hash, settings, created_at, public_token) VALUES (${lit(LOCAL_PROJECT_ID)}, 'test', 'Local development', ${lit(hash)}, '{}', ${Date.now()}, ${lit(LOCAL_PUBLIC_TOKEN)}) ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash, public_token = excluded.public_token`,
  })
  console.log(
    `local test project ready: ${LOCAL_PROJECT_ID}, public token ${LOCAL_PUBLIC_TOKEN} (local only; secret in README)`,
  )
}

if (import.meta.url === `file://${process.argv[1]}`) setupLocal()
