// Project administration against local D1 (default) or the deployed database (--remote).
//
//   npm run project:create -- --env test|live [--name NAME] [--shard N] [--set KEY=VALUE ...] [--remote [--wrangler-env E]]
//   npm run project:update -- --id PROJECT_ID [--set KEY=VALUE ...] [--rotate-secret] [--rotate-public-token]
//                             [--remote [--wrangler-env E]]
//   npm run project:show -- --id PROJECT_ID [--remote [--wrangler-env E]]
// (--wrangler-env staging|production picks that wrangler environment's databases; --env is the project's;
// --persist-to DIR uses local state kept there instead of wrangler's default directory.)
//
// --shard N places the project's data on D1 shard N (the binding DB_N; 0 is DB, which also holds every
// project's record); without it, on the shard holding the fewest projects. `npm run project:move`
// moves a project to another shard later.
//
// The secret is printed once, at creation (or rotation), and stored only as its SHA-256. The public
// token (what the frontend SDKs use; it is not secret) is printed at creation and by show.
// Settings keys and defaults are in src/settings.ts and the README's limits table;
// allowed_countries, allowed_line_types, sms_allowed_countries and sms_allowed_line_types take a
// comma-separated list (US,CA; MOBILE,FIXED_LINE) or "*"; sdk_authorized_origins a comma-separated list
// of origins (https://app.example.com,https://www.example.com); sms_sends_per_hour_by_country takes
// COUNTRY:N pairs (BR:100,NG:0); sms_autofill_domain a domain, or nothing to remove it; whatsapp_fallback
// none or sms; true and false set the sdk_* switches.
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { parseArgs } from 'node:util'
import { ProjectSettingsSchema, projectUpdateNotice } from '../src/settings.ts'
import { d1Execute, d1MigrationsEnsureLocal, lit, shardBindings } from './d1.mjs'

const [command, ...rest] = process.argv.slice(2)
const { values } = parseArgs({
  args: rest,
  options: {
    env: { type: 'string' },
    id: { type: 'string' },
    name: { type: 'string', default: '' },
    set: { type: 'string', multiple: true, default: [] },
    'rotate-secret': { type: 'boolean', default: false },
    'rotate-public-token': { type: 'boolean', default: false },
    remote: { type: 'boolean', default: false },
    'wrangler-env': { type: 'string' },
    'persist-to': { type: 'string' },
    shard: { type: 'string' },
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
  if (key === 'sdk_authorized_origins') {
    return [key, raw.trim() === '' ? [] : raw.split(',').map((origin) => origin.trim())]
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
  if (raw === 'true' || raw === 'false') return [key, raw === 'true']
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
const newPublicToken = (env) => `public-token-${env}-${randomUUID()}`
/** The project's row (never its secret hash); exits when there is none. */
function readProject(id) {
  const [result] = d1Execute({
    remote,
    configEnv,
    persistTo,
    json: true,
    sql: `SELECT id, env, name, public_token, settings, created_at, shard, move_from, move_to, move_step
          FROM projects WHERE id = ${lit(id)}`,
  })
  const row = result?.results?.[0]
  if (!row) fail(`no project ${id}`)
  return row
}
const checkedId = (id) => {
  if (!id || !/^project-(test|live)-[0-9a-f-]{36}$/.test(id)) fail('--id must be a project id')
  return id
}
const sha256 = (text) => createHash('sha256').update(text).digest('hex')
const remote = values.remote
const configEnv = values['wrangler-env']
// Local state in another directory than wrangler's default (as `wrangler dev --persist-to`).
const persistTo = values['persist-to']
const USAGE =
  'usage: project.mjs create --env test|live [--shard N] [...] | show --id PROJECT_ID | update --id PROJECT_ID [...]'
// What can be checked without the database is checked before anything touches it: a mistyped
// command, id, shard or setting fails at once and changes nothing. (Each setting is valid or not on
// its own, so checking the new values alone refuses what checking them merged with the stored ones would.)
if (command !== 'create' && command !== 'show' && command !== 'update') fail(USAGE)
if (command === 'create' && values.env !== 'test' && values.env !== 'live') fail('--env must be "test" or "live"')
if (command !== 'create') checkedId(values.id)
const shardCount = shardBindings(configEnv).length
if (values.shard !== undefined && (!/^[0-9]+$/.test(values.shard) || Number(values.shard) >= shardCount)) {
  fail(`--shard must be a shard of this deployment: 0 to ${shardCount - 1} (wrangler.toml DB, DB_1, …)`)
}
const overrides = checkedSettings(Object.fromEntries(values.set.map(parseSetting)))

// Local state is migrated first, so the scripts work on a fresh checkout too. A deployed database is
// migrated only by its operator (`npm run db:migrate -- --remote`), before the Worker that needs it.
if (!remote) d1MigrationsEnsureLocal({ persistTo })

/**
 * The shard a new project goes to: `--shard N` when given (it must exist), else the shard holding the
 * fewest projects (the lowest-numbered of equals), counted in the directory.
 */
function placement() {
  if (values.shard !== undefined) return Number(values.shard)
  const [result] = d1Execute({
    remote,
    configEnv,
    persistTo,
    json: true,
    sql: 'SELECT shard, COUNT(*) AS n FROM projects GROUP BY shard',
  })
  const counts = new Map((result?.results ?? []).map((/** @type {any} */ r) => [r.shard, r.n]))
  let best = 0
  for (let n = 1; n < shardCount; n++) if ((counts.get(n) ?? 0) < (counts.get(best) ?? 0)) best = n
  return best
}

if (command === 'create') {
  const env = values.env
  const settings = overrides
  const shard = placement()
  const id = `project-${env}-${randomUUID()}`
  const secret = newSecret(env)
  const publicToken = newPublicToken(env)
  const createdAt = Date.now()
  // On another shard than the directory, the anchor row its rows' foreign keys point at comes first:
  // a project never exists in the directory without it.
  if (shard !== 0) {
    d1Execute({
      remote,
      configEnv,
      persistTo,
      binding: `DB_${shard}`,
      sql: `INSERT INTO projects (id, env, name, secret_hash, settings, created_at, shard) VALUES (${lit(id)}, ${lit(env)}, ${lit(values.name)}, '', '{}', ${createdAt}, ${shard})`,
    })
  }
  d1Execute({
    remote,
    configEnv,
    persistTo,
    sql: `INSERT INTO projects (id, env, name, secret_hash, settings, created_at, public_token, shard) VALUES (${lit(id)}, ${lit(env)}, ${lit(values.name)}, ${lit(sha256(secret))}, ${lit(JSON.stringify(settings))}, ${createdAt}, ${lit(publicToken)}, ${shard})`,
  })
  console.log(JSON.stringify({ project_id: id, secret, public_token: publicToken, env, shard, settings }, null, 2))
  console.log('Store the secret now: it is not kept anywhere and cannot be shown again.')
  console.log('The public token is for the frontend SDKs (not a secret); `npm run project:show` prints it again.')
} else if (command === 'show') {
  const id = checkedId(values.id)
  const row = readProject(id)
  const shown = {
    project_id: row.id,
    env: row.env,
    name: row.name,
    public_token: row.public_token,
    created_at: new Date(row.created_at).toISOString(),
    shard: row.shard,
    ...(row.move_to === null ? {} : { move: { from: row.move_from, to: row.move_to, step: row.move_step } }),
    settings: JSON.parse(row.settings),
  }
  console.log(JSON.stringify(shown, null, 2))
} else if (command === 'update') {
  const id = checkedId(values.id)
  const row = readProject(id)
  const settings = checkedSettings({ ...JSON.parse(row.settings), ...overrides })
  const assignments = [`settings = ${lit(JSON.stringify(settings))}`]
  let secret
  if (values['rotate-secret']) {
    secret = newSecret(row.env)
    assignments.push(`secret_hash = ${lit(sha256(secret))}`)
  }
  let publicToken
  if (values['rotate-public-token']) {
    publicToken = newPublicToken(row.env)
    assignments.push(`public_token = ${lit(publicToken)}`)
  }
  if (values.name) assignments.push(`name = ${lit(values.name)}`)
  d1Execute({
    remote,
    configEnv,
    persistTo,
    sql: `UPDATE projects SET ${assignments.join(', ')} WHERE id = ${lit(id)}`,
  })
  const changed = { ...(secret ? { secret } : {}), ...(publicToken ? { public_token: publicToken } : {}) }
  console.log(JSON.stringify({ project_id: id, ...changed, settings }, null, 2))
  if (publicToken) {
    console.log(
      'The new public token works at once; the old one is refused everywhere within 30 seconds (project cache lifetime). Deploy your web app with the new one.',
    )
  }
  console.log(projectUpdateNotice(Boolean(secret)))
}
