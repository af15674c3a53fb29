// `npm run project:move`: moves a project's data to another D1 shard with nothing lost
// (src/shards/move.ts says how; docs/operations.md, "Moving a project between shards").
//
//   npm run project:move -- --id PROJECT_ID --to N [--until STEP] [--remote [--wrangler-env E]]
//   npm run project:move -- --id PROJECT_ID --abort [--remote [--wrangler-env E]]
//
// Steps: start, copy, pause, catch_up, flip, purge. The project is answered 503 (Retry-After) from the
// pause (announced 30 s ahead) until the flip, a few seconds later; the run then waits 30 s more
// before deleting the old copy. Each step is recorded in the directory, so running the same command
// again after a crash, a lost connection or --until finishes the move from where it stopped.
// --until STEP stops after that step (e.g. --until copy copies in advance; run again to finish).
// --abort abandons a move that has not flipped: the project stays where it was, the copy is deleted.
// --offline: no Worker serves these databases (a local state no `npm run dev` runs on): the waits
// for isolate caches and requests in flight are skipped. Never use it against a serving deployment.
// --persist-to DIR: local state kept there instead of wrangler's default directory.
//
// The databases are reached through wrangler's platform proxy (getPlatformProxy): local state by
// default, the deployed databases of the wrangler environment with --remote (your `wrangler login`
// or CLOUDFLARE_API_TOKEN, as for `wrangler d1 execute --remote`).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { registerHooks } from 'node:module'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { getPlatformProxy, unstable_readConfig } from 'wrangler'
import { shardBindings } from './d1.mjs'

// The move is the Worker's own TypeScript (src/shards/move.ts), whose imports name no extension.
registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context)
    } catch (err) {
      if (specifier.startsWith('.') && context.parentURL?.endsWith('.ts'))
        return nextResolve(`${specifier}.ts`, context)
      throw err
    }
  },
})
const { abortMove, MOVE_STEPS, MoveError, moveProject } = await import('../src/shards/move.ts')

const { values } = parseArgs({
  options: {
    id: { type: 'string' },
    to: { type: 'string' },
    until: { type: 'string' },
    abort: { type: 'boolean', default: false },
    offline: { type: 'boolean', default: false },
    remote: { type: 'boolean', default: false },
    'wrangler-env': { type: 'string' },
    'persist-to': { type: 'string' },
  },
})

function fail(message) {
  console.error(`error: ${message}`)
  process.exit(2)
}

if (!values.id || !/^project-(test|live)-[0-9a-f-]{36}$/.test(values.id)) fail('--id must be a project id')
if (!values.abort && (values.to === undefined || !/^[0-9]+$/.test(values.to))) fail('--to must be a shard number')
if (values.until !== undefined && !(/** @type {readonly string[]} */ (MOVE_STEPS).includes(values.until)))
  fail(`--until must be one of ${MOVE_STEPS.join(', ')}`)
if (values.offline && values.remote) fail('--offline is for local state only')

const configEnv = values['wrangler-env']
const persistTo = values['persist-to']
const bindings = shardBindings(configEnv)

/**
 * The bindings to open: wrangler.toml as it is for local state; for --remote, a configuration of the
 * environment's D1 bindings alone, each marked remote, so the proxy reaches the deployed databases.
 */
function proxyOptions() {
  if (!values.remote) {
    // The shards must be at the same migration (the move checks): `npm run db:migrate` (and `npm run
    // dev`) migrate every one.
    return {
      configPath: 'wrangler.toml',
      persist: { path: resolve(persistTo ?? '.wrangler/state', 'v3') },
      remoteBindings: false,
    }
  }
  const config = unstable_readConfig({ config: 'wrangler.toml', env: configEnv })
  const dir = mkdtempSync(join(tmpdir(), 'project-move-'))
  const path = join(dir, 'wrangler.json')
  writeFileSync(
    path,
    JSON.stringify({
      name: config.name,
      compatibility_date: config.compatibility_date,
      d1_databases: config.d1_databases
        .filter((d) => bindings.includes(d.binding))
        .map((d) => ({ binding: d.binding, database_name: d.database_name, database_id: d.database_id, remote: true })),
    }),
  )
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  return { configPath: path, persist: false, remoteBindings: true }
}

const proxy = await getPlatformProxy(proxyOptions())
/** @type {import('../src/shards/move.ts').MoveDeps} */
const deps = {
  /** @param {number} n */
  shard(n) {
    const db = /** @type {D1Database | undefined} */ (proxy.env[bindings[n] ?? ''])
    if (!db) throw new MoveError(`shard ${n} has no D1 binding in wrangler.toml`)
    return db
  },
  shardCount: bindings.length,
  now: () => Date.now(),
  sleep: (ms) => new Promise((done) => setTimeout(done, ms)),
  wait: !values.offline,
  log: (line) => console.error(`${new Date().toISOString()} ${line}`),
}

// Checked above: the process has exited unless --id names a project.
const projectId = /** @type {string} */ (values.id)
let exitCode = 0
try {
  const result = values.abort
    ? await abortMove(deps, projectId)
    : await moveProject(deps, {
        projectId,
        to: Number(values.to),
        ...(values.until ? { until: /** @type {import('../src/shards/move.ts').MoveStep} */ (values.until) } : {}),
      })
  console.log(JSON.stringify(result, null, 2))
  if (!values.abort && 'done' in result && !result.done)
    console.log('Stopped as asked: run the same command again to go on.')
} catch (err) {
  console.error(`error: ${err instanceof MoveError ? err.message : (err?.stack ?? err)}`)
  console.error(
    'Nothing is lost: run the same command again to resume the move, or with --abort (before its flip) to abandon it.',
  )
  exitCode = 1
} finally {
  await proxy.dispose()
}
process.exit(exitCode)
