// Project administration against local D1 (default) or the deployed database (--remote).
//
//   npm run project:create -- --env test|live [--name NAME] [--set KEY=VALUE ...] [--remote [--wrangler-env E]]
//   npm run project:update -- --id PROJECT_ID [--set KEY=VALUE ...] [--rotate-secret] [--remote [--wrangler-env E]]
// (--wrangler-env staging|production picks that wrangler environment's database; --env is the project's;
// --persist-to DIR the local state of `npm run dev -- --persist-to DIR` instead of the default one.)
//
// The secret is printed once, at creation (or rotation), and stored only as its SHA-256.
// Settings keys and defaults are in src/settings.ts and the README's limits table;
// allowed_countries, allowed_line_types, sms_allowed_countries and sms_allowed_line_types take a
// comma-separated list (US,CA; MOBILE,FIXED_LINE) or "*"; sms_sends_per_hour_by_country takes
// COUNTRY:N pairs (BR:100,NG:0); sms_autofill_domain a domain, or nothing to remove it; whatsapp_fallback
// none or sms.
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { parseArgs } from 'node:util'
import { ProjectSettingsSchema } from '../src/settings.ts'
import { d1Execute, d1MigrationsApply, lit } from './d1.mjs'

const [command, ...rest] = process.argv.slice(2)
const { values } = parseArgs({
  args: rest,
  options: {
    env: { type: 'string' },
    id: { type: 'string' },
    name: { type: 'string', default: '' },
    set: { type: 'string', multiple: true, default: [] },
    'rotate-secret': { type: 'boolean', default: false },
    remote: { type: 'boolean', default: false },
    'wrangler-env': { type: 'string' },
    'persist-to': { type: 'string' },
  },
})

function fail(message) {
  console.error(`error: ${message}`)
  process.exit(2)
}

const LISTS = new Set(['allowed_countries', 'allowed_line_types', 'sms_allowed_countries', 'sms_allowed_line_types'])

function parseSetting(pair) {
  const eq = pair.indexOf('=')
  if (eq <= 0) fail(`--set expects KEY=VALUE, got "${pair}"`)
  const key = pair.slice(0, eq)
  const raw = pair.slice(eq + 1)
  if (!(key in ProjectSettingsSchema.shape)) {
    fail(`unknown setting "${key}"; known: ${Object.keys(ProjectSettingsSchema.shape).join(', ')}`)
  }
  if (LISTS.has(key)) {
    return [key, raw === '*' ? '*' : raw.split(',').map((c) => c.trim().toUpperCase())]
  }
  if (key === 'sms_sends_per_hour_by_country') {
    const pairs = raw.split(',').filter((p) => p.trim() !== '')
    const map = {}
    for (const p of pairs) {
      const [country, n] = p.split(':').map((x) => x.trim())
      if (!country || n === undefined || !/^[0-9]+$/.test(n)) fail(`${key} expects COUNTRY:N pairs, e.g. BR:100,NG:0`)
      map[country.toUpperCase()] = Number(n)
    }
    return [key, map]
  }
  if (key === 'sms_autofill_domain') return [key, raw.trim() === '' ? null : raw.trim().toLowerCase()]
  const n = Number(raw)
  return [key, Number.isFinite(n) && raw.trim() !== '' ? n : raw]
}

/** Validates overrides against the schema; stores only the overrides (defaults stay implicit). */
function checkedSettings(overrides) {
  const result = ProjectSettingsSchema.safeParse(overrides)
  if (!result.success) {
    fail(result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '))
  }
  return overrides
}

const newSecret = (env) => `secret-${env}-${randomBytes(32).toString('base64url')}`
const sha256 = (text) => createHash('sha256').update(text).digest('hex')
const remote = values.remote
const configEnv = values['wrangler-env']
const persistTo = values['persist-to']
// Local state is migrated first, so the scripts work on a fresh checkout too. A deployed database is
// migrated only by its operator (`npm run db:migrate -- --remote`), before the Worker that needs it.
if (!remote && (command === 'create' || command === 'update')) d1MigrationsApply({ persistTo })

if (command === 'create') {
  const env = values.env
  if (env !== 'test' && env !== 'live') fail('--env must be "test" or "live"')
  const settings = checkedSettings(Object.fromEntries(values.set.map(parseSetting)))
  const id = `project-${env}-${randomUUID()}`
  const secret = newSecret(env)
  d1Execute({
    remote,
    configEnv,
    persistTo,
    sql: `INSERT INTO projects (id, env, name, secret_hash, settings, created_at) VALUES (${lit(id)}, ${lit(env)}, ${lit(values.name)}, ${lit(sha256(secret))}, ${lit(JSON.stringify(settings))}, ${Date.now()})`,
  })
  console.log(JSON.stringify({ project_id: id, secret, env, settings }, null, 2))
  console.log('Store the secret now: it is not kept anywhere and cannot be shown again.')
} else if (command === 'update') {
  const id = values.id
  if (!id || !/^project-(test|live)-[0-9a-f-]{36}$/.test(id)) fail('--id must be a project id')
  const [result] = d1Execute({
    remote,
    configEnv,
    persistTo,
    json: true,
    sql: `SELECT env, settings FROM projects WHERE id = ${lit(id)}`,
  })
  const row = result?.results?.[0]
  if (!row) fail(`no project ${id}`)
  const settings = checkedSettings({ ...JSON.parse(row.settings), ...Object.fromEntries(values.set.map(parseSetting)) })
  const assignments = [`settings = ${lit(JSON.stringify(settings))}`]
  let secret
  if (values['rotate-secret']) {
    secret = newSecret(row.env)
    assignments.push(`secret_hash = ${lit(sha256(secret))}`)
  }
  if (values.name) assignments.push(`name = ${lit(values.name)}`)
  d1Execute({
    remote,
    configEnv,
    persistTo,
    sql: `UPDATE projects SET ${assignments.join(', ')} WHERE id = ${lit(id)}`,
  })
  console.log(JSON.stringify({ project_id: id, ...(secret ? { secret } : {}), settings }, null, 2))
  console.log(
    secret
      ? 'The new secret works at once; the old one stops on its next use (Workers re-read the project when a secret does not match). Other changes apply within 30 seconds (project cache lifetime).'
      : 'Running Workers pick up the change within 30 seconds (project cache lifetime).',
  )
} else {
  fail('usage: project.mjs create --env test|live [...] | update --id PROJECT_ID [...]')
}
