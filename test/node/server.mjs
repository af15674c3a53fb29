// Starts the Worker for Node-side tests exactly as a developer does (`node scripts/dev.mjs`, i.e.
// `wrangler dev` with local D1, KV and Queues), on a free port and a state directory of its own, and
// stops it again. Shared by the tests that drive the official `stytch` SDK over real HTTP.
//
//   const server = await startServer({ projects: [{ id, secret, env: 'test' }] })
//   const client = new Client({ project_id, secret, env: server.baseUrl })
//   ...
//   await server.stop()   // always, e.g. in after(); kills the process group it started
//
// A test file that needs one server for all its tests calls serveDuringTests(options, ready)
// instead, which does the start and the stop in before()/after().
//
// Run from the repository root with Node 22 and node_modules/.bin on PATH (as `npm run` does).
import { spawn } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before } from 'node:test'
import { d1Execute, d1MigrationsApply, lit } from '../../scripts/d1.mjs'
import { LOCAL_PROJECT_ID, LOCAL_PROJECT_SECRET, LOCAL_PUBLIC_TOKEN } from '../../scripts/dev-setup.mjs'

/** The local test project `npm run dev` seeds (README). */
export const LOCAL_PROJECT = {
  id: LOCAL_PROJECT_ID,
  secret: LOCAL_PROJECT_SECRET,
  env: 'test',
  publicToken: LOCAL_PUBLIC_TOKEN,
}

// 8787 is the developer's own `npm run dev`; test servers take the first free port from here.
const FIRST_PORT = 8793
const READY_TIMEOUT_MS = 120_000
const STOP_TIMEOUT_MS = 10_000

function portIsFree(port) {
  return new Promise((resolve) => {
    const probe = createServer()
    probe.once('error', () => resolve(false))
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)))
  })
}

async function freePort([first, last]) {
  for (let port = first; port <= last; port++) {
    if (await portIsFree(port)) return port
  }
  throw new Error(`no free port in ${first}-${last}`)
}

/** Kills the server's process group and removes its state if this process ends first (exit, Ctrl-C, kill). */
function killOnExit(child, persistTo) {
  const kill = () => {
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {
      // already gone
    }
    rmSync(persistTo, { recursive: true, force: true })
  }
  const onSignal = (signal) => {
    kill()
    process.exit(signal === 'SIGINT' ? 130 : 143)
  }
  process.once('exit', kill)
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  return () => {
    process.off('exit', kill)
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

/**
 * Migrates a state directory and seeds extra projects into it before the server opens it. A project's
 * `publicToken` is its public token for the frontend SDKs (a random one when not given); its `shard`
 * the D1 shard holding its data (0 unless given), where it also gets the anchor row its rows need.
 */
function seedProjects(persistTo, projects) {
  if (projects.length === 0) return
  const env = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' }
  d1MigrationsApply({ persistTo, env })
  const rows = projects.map((p) => {
    const hash = createHash('sha256').update(p.secret).digest('hex')
    const publicToken = p.publicToken ?? `public-token-${p.env}-${randomUUID()}`
    return `(${lit(p.id)}, ${lit(p.env)}, 'node test', ${lit(hash)}, ${lit(JSON.stringify(p.settings ?? {}))}, ${Date.now()}, ${lit(publicToken)}, ${p.shard ?? 0})`
  })
  d1Execute({
    persistTo,
    env,
    sql: `INSERT INTO projects (id, env, name, secret_hash, settings, created_at, public_token, shard) VALUES ${rows.join(', ')}`,
  })
  for (const p of projects.filter((p) => (p.shard ?? 0) !== 0)) {
    d1Execute({
      persistTo,
      env,
      binding: `DB_${p.shard}`,
      sql: `INSERT INTO projects (id, env, name, secret_hash, settings, created_at, shard) VALUES (${lit(p.id)}, ${lit(p.env)}, 'node test', '', '{}', ${Date.now()}, ${p.shard})`,
    })
  }
}

/**
 * Starts the Worker and resolves once GET /health answers. `projects` are created besides the local
 * test project; `vars` are extra `NAME:VALUE` Worker variables; `ports` is the [first, last] range
 * the port is taken from; `script` is the dev script (another Worker's, such as the web-login
 * example's, takes the same options); `entry` replaces the Worker's entry point (the bench's). The caller must call stop(); if this process ends first, the
 * server ends too.
 */
export async function startServer({
  projects = [],
  vars = [],
  ports = [FIRST_PORT, FIRST_PORT + 199],
  script = 'scripts/dev.mjs',
  entry,
} = {}) {
  if (!existsSync(script)) throw new Error('run from the repository root')
  const persistTo = mkdtempSync(join(tmpdir(), 'whatsapp-otp-node-test-'))
  seedProjects(persistTo, projects)
  const port = await freePort(ports)
  const args = [script, '--port', String(port), '--persist-to', persistTo]
  for (const v of vars) args.push('--var', v)
  if (entry) args.push('--entry', entry)
  // Its own process group, so stop() ends wrangler and the workerd it starts, and nothing else.
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const keep = (chunk) => {
    output = (output + chunk).slice(-20_000)
  }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const forget = killOnExit(child, persistTo)

  let stopped = false
  /**
   * Ends the server's process group. With `keepState` the state directory stays on disk for the
   * caller to read (no process writes to it any more) and to remove; by default it is deleted.
   */
  async function stop({ keepState = false } = {}) {
    if (stopped) return
    stopped = true
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, 'SIGTERM')
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }, STOP_TIMEOUT_MS)
      await exited
      clearTimeout(timer)
    }
    // wrangler's own children (workerd) may outlive it by a moment: nothing of the group survives.
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {
      // the group is empty
    }
    forget()
    if (!keepState) rmSync(persistTo, { recursive: true, force: true })
  }

  const baseUrl = `http://127.0.0.1:${port}/`
  const deadline = Date.now() + READY_TIMEOUT_MS
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the server exited with code ${child.exitCode}`)
      try {
        const res = await fetch(new URL('/health', baseUrl), { signal: AbortSignal.timeout(2_000) })
        if (res.ok) break
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`the server did not answer within ${READY_TIMEOUT_MS} ms`)
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  } catch (err) {
    await stop()
    throw new Error(`${err.message}\n--- server output ---\n${output}`)
  }
  return { baseUrl, port, persistTo, stop, output: () => output }
}

/**
 * Starts the service before the calling test file's tests (startServer's options) and stops it after
 * them. `ready(server)` runs once it answers, within the same `timeout`: the file keeps its server
 * and makes its clients or seeds its state there.
 */
export function serveDuringTests(options, ready, { timeout = 180_000 } = {}) {
  let server
  before(
    async () => {
      server = await startServer(options)
      await ready(server)
    },
    { timeout },
  )
  after(async () => {
    await server?.stop()
  })
}

/** HTTP Basic credentials of a project, as the API and the dev outbox take them. */
export const basicAuth = (project) => `Basic ${Buffer.from(`${project.id}:${project.secret}`).toString('base64')}`

/** Messages the console provider delivered to `phone` for `project`, newest first (the dev outbox). */
export async function readOutbox(baseUrl, project, phone) {
  const url = new URL(`/dev/whatsapp/outbox?phone_number=${encodeURIComponent(phone)}`, baseUrl)
  const res = await fetch(url, { headers: { authorization: basicAuth(project) } })
  if (res.status !== 200) throw new Error(`dev outbox answered ${res.status}: ${await res.text()}`)
  return (await res.json()).messages
}

/**
 * Waits for the queue consumer to deliver one more message to `phone` than `seen` and returns its
 * code, checked to be 6 digits and to stand in the message text.
 */
export async function waitForCode(baseUrl, project, phone, seen, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const messages = await readOutbox(baseUrl, project, phone)
    if (messages.length > seen) {
      const { code, text } = messages[0]
      if (!/^[0-9]{6}$/.test(code) || !text.includes(code)) throw new Error(`malformed message: ${text}`)
      return code
    }
    if (Date.now() > deadline) throw new Error(`no WhatsApp message for ${phone} within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
