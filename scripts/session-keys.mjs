// Session JWT signing keys against local D1 (default) or the deployed database (--remote).
//
//   npm run session-keys:rotate -- --id PROJECT_ID [--remote]
//   npm run session-keys:rotate -- --all [--remote]
//   npm run session-keys:list -- [--id PROJECT_ID] [--remote]
//   npm run session-keys:revoke -- --id PROJECT_ID [--kid KID] [--remote]
// (--persist-to DIR addresses a local state directory other than .wrangler/state, as with dev.mjs;
// --wrangler-env staging|production picks that wrangler environment's databases with --remote.)
//
// A project's keys live in the D1 shard its directory record names (docs/scaling.md): --id acts there;
// --all and list go through every shard, each key listed from its project's shard only.
//
// Rotating retires the project's active key; the Worker generates the successor the next time it
// signs a JWT (within a minute in every isolate: the key cache lifetime). This script never sees key
// material: generation and sealing happen inside the Worker, under SESSION_KEY_ENCRYPTION_KEY. The
// retired key stays in the JWKS until every JWT it signed has expired (src/sessions/keys.ts).
//
// Revoking is the emergency path for a key that may be compromised: the key (by default the active
// one) is deleted, so it is neither published nor trusted any more, with no overlap for the JWTs it
// signed: each isolate drops it when its key cache expires (within a minute) and signs with a fresh
// key from then on. Those JWTs are refused from then on; session tokens are not affected.
import { parseArgs } from 'node:util'
import { d1Execute, d1MigrationsEnsureLocal, lit, shardBindings } from './d1.mjs'

const [command, ...rest] = process.argv.slice(2)
const { values } = parseArgs({
  args: rest,
  options: {
    id: { type: 'string' },
    kid: { type: 'string' },
    all: { type: 'boolean', default: false },
    remote: { type: 'boolean', default: false },
    'persist-to': { type: 'string' },
    'wrangler-env': { type: 'string' },
  },
})

function fail(message) {
  console.error(`error: ${message}`)
  process.exit(2)
}

const remote = values.remote
const persistTo = values['persist-to']
const configEnv = values['wrangler-env']
const d1 = (args) => d1Execute({ remote, persistTo, configEnv, ...args })
if (values.id && !/^project-(test|live)-[0-9a-f-]{36}$/.test(values.id)) fail('--id must be a project id')
// Local state is migrated first, so the script works on a fresh checkout too; a deployed database is
// migrated only by its operator (`npm run db:migrate -- --remote`).
if (!remote) d1MigrationsEnsureLocal({ persistTo })

const bindings = shardBindings(configEnv)
/** Each project's shard, from the directory. */
function homes() {
  const [result] = d1({ json: true, sql: 'SELECT id, shard FROM projects' })
  return new Map((result?.results ?? []).map((p) => [p.id, p.shard]))
}
/**
 * The rows `sql` returns on each shard it runs on: the --id project's shard, or every shard; a row
 * (with a project_id) counts only from the shard its project's record names.
 */
function onShards(sql) {
  const home = homes()
  if (values.id && !home.has(values.id)) fail(`no project ${values.id}`)
  const shards = values.id ? [home.get(values.id)] : bindings.map((_, n) => n)
  return shards.flatMap((n) => {
    const [result] = d1({ json: true, binding: bindings[n], sql })
    return (result?.results ?? []).filter((row) => (home.get(row.project_id) ?? 0) === n)
  })
}

if (command === 'rotate') {
  if (!values.id === !values.all) fail('give exactly one of --id PROJECT_ID or --all')
  const scope = values.id ? `project_id = ${lit(values.id)} AND ` : ''
  const retired = onShards(
    `UPDATE session_signing_keys SET retired_at = ${Date.now()}
     WHERE ${scope}retired_at IS NULL RETURNING project_id, kid`,
  )
  console.log(JSON.stringify({ retired }, null, 2))
  if (retired.length === 0) console.log('No active key: the next JWT signed creates the first one.')
  else console.log('Successors are generated on next use; the retired keys stay published until their JWTs expire.')
} else if (command === 'revoke') {
  if (!values.id) fail('give --id PROJECT_ID (and --kid KID for a key other than the active one)')
  if (values.all) fail('revoke takes one project: --id PROJECT_ID')
  if (values.kid && !/^jwk-(test|live)-[0-9a-f-]{36}$/.test(values.kid)) fail('--kid must be a key id (jwk-…)')
  const which = values.kid ? `kid = ${lit(values.kid)}` : 'retired_at IS NULL'
  const revoked = onShards(
    `DELETE FROM session_signing_keys WHERE project_id = ${lit(values.id)} AND ${which}
     RETURNING project_id, kid`,
  )
  console.log(JSON.stringify({ revoked }, null, 2))
  if (revoked.length === 0) fail(values.kid ? `no key ${values.kid} in ${values.id}` : `${values.id} has no active key`)
  console.log(
    'Revoked: no longer published or trusted once each isolate refreshes its key cache (within a minute); ' +
      'JWTs it signed are refused from then on, and the next JWT is signed with a new key.',
  )
} else if (command === 'list') {
  const scope = values.id ? `WHERE project_id = ${lit(values.id)}` : ''
  const listed = onShards(
    `SELECT project_id, kid, created_at, retired_at FROM session_signing_keys ${scope}
     ORDER BY project_id, created_at`,
  )
  listed.sort((a, b) =>
    a.project_id < b.project_id ? -1 : a.project_id > b.project_id ? 1 : a.created_at - b.created_at,
  )
  const iso = (ms) => (ms === null ? null : new Date(ms).toISOString())
  const keys = listed.map((k) => ({
    ...k,
    created_at: iso(k.created_at),
    retired_at: iso(k.retired_at),
  }))
  console.log(JSON.stringify({ keys }, null, 2))
} else {
  fail(
    'usage: session-keys.mjs rotate --id PROJECT_ID | --all [--remote]; revoke --id PROJECT_ID [--kid KID] [--remote]; ' +
      'list [--id PROJECT_ID] [--remote]',
  )
}
