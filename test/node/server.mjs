// Starts the Worker for Node-side tests exactly as a developer does (`node scripts/dev.mjs`, i.e.
// `wrangler dev` with local D1, KV and Queues), on a free port, a state directory and a dev registry
// of its own, and stops it again. Shared by the tests that drive the official `stytch` SDK over real
// HTTP, the benchmark and the load test.
//
// `npm run test:node` (test/node/run.mjs) starts one such server for all test files and hands it to
// them (TEST_SERVER_INFO); every file that asks for a server gets that one, with the projects it
// names added, unless it needs a server of its own (below). Run alone
// (`node --test test/node/x.test.mjs`), a file starts its own. Each file uses projects of its own
// (random ids), so files sharing the server cannot see each other's users, codes or limits.
//
//   serveDuringTests({ projects: [{ id, secret, env: 'test', settings }] }, (server) => {
//     client = new Client({ project_id, secret, env: server.baseUrl })
//   })
//
// serveDuringTests(options, ready) gets the server in before() and lets it go in after();
// serverFor(options) does the same inside a test file's own hooks (call stop() when done: it ends
// only a server of the file's own). `own: true` asks for a server of the file's own, for a test that
// reads the server's state directory with other processes (`wrangler d1 execute` while the server
// writes can fail with SQLITE_BUSY) or changes its configuration (`vars`, `script`, `entry`).
// startServer(options) always starts a new one; its caller must call stop().
//
// Run from the repository root with Node 22 and node_modules/.bin on PATH (as `npm run` does).
import { spawn } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before } from 'node:test'
import { LOCAL_PROJECT_ID, LOCAL_PROJECT_SECRET, LOCAL_PUBLIC_TOKEN } from '../../scripts/dev-setup.mjs'

/** The local test project `npm run dev` seeds (README). */
export const LOCAL_PROJECT = {
  id: LOCAL_PROJECT_ID,
  secret: LOCAL_PROJECT_SECRET,
  env: 'test',
  publicToken: LOCAL_PUBLIC_TOKEN,
}

/**
 * A project a test adds to its server: `publicToken` is its public token for the frontend SDKs (a
 * random one when not given); `settings` are stored as they are (the defaults apply to the rest).
 * @typedef {{ id: string, secret: string, env: string, publicToken?: string, settings?: Record<string, unknown>,
 *   shard?: number }} TestProject
 */

/**
 * startServer's options (see there).
 * @typedef {{ projects?: TestProject[], vars?: string[], ports?: number[], script?: string,
 *   entry?: string, registry?: string }} ServerOptions
 */

/**
 * A running test server. `stop()` ends it (with `keepState` its state directory stays for the caller
 * to read and remove); for the shared server it does nothing.
 * @typedef {{ baseUrl: string, port: number, persistTo: string, registry: string,
 *   stop: (options?: { keepState?: boolean }) => Promise<void>, output: () => string }} TestServer
 */

// 8787 is the developer's own `npm run dev`; test servers take the first free port from here.
const FIRST_PORT = 8793
const READY_TIMEOUT_MS = 120_000
const STOP_TIMEOUT_MS = 10_000

/** @param {number} port @returns {Promise<boolean>} */
function portIsFree(port) {
  return new Promise((resolve) => {
    const probe = createServer()
    probe.once('error', () => resolve(false))
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)))
  })
}

/** @param {number[]} range [first, last] */
async function freePort([first = FIRST_PORT, last = first]) {
  for (let port = first; port <= last; port++) {
    if (await portIsFree(port)) return port
  }
  throw new Error(`no free port in ${first}-${last}`)
}

/** Kills the server's process group and removes its state if this process ends first (exit, Ctrl-C, kill). */
/** @param {number} pid the server's process (and process group) id @param {string} persistTo */
function killOnExit(pid, persistTo) {
  const kill = () => {
    try {
      process.kill(-pid, 'SIGKILL')
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
 * One HTTP request on a connection of its own, closed after the reply (fetch would keep it in the
 * process-wide pool). The harness's own requests (the readiness poll, the D1 API) go this way, so
 * they leave no idle connection behind for a test's next fetch to pick up: a file that then blocks
 * its event loop (execFileSync) past the server's keep-alive timeout would otherwise send its first
 * request on a socket the server has closed ("fetch failed").
 * @param {URL} url
 * @param {{ method?: string, headers?: Record<string, string>, body?: string, timeoutMs?: number }} [options]
 * @returns {Promise<{ status: number, text: string }>}
 */
function oneRequest(url, { method = 'GET', headers = {}, body, timeoutMs = 30_000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false, timeout: timeoutMs }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => {
        text += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no reply from ${url} within ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end(body)
  })
}

/**
 * SQL against the running server's D1 database through wrangler's local explorer API (served by
 * `wrangler dev` itself on its own port, to loopback hosts only): the statement runs inside the
 * server's workerd, so it never meets the server's writes on the database file the way a second
 * process (`wrangler d1 execute`) does. The API takes parameters as strings (a numeric string
 * bound for an INTEGER column is stored as the number, by SQLite's column affinity). Returns the rows
 * as objects. `binding` names the database: DB (shard 0 and the directory) unless given, DB_1 … for
 * the other shards.
 * @param {string} baseUrl
 * @param {string} sql
 * @param {(string | number)[]} [params]
 * @param {string} [binding]
 * @returns {Promise<Record<string, unknown>[]>}
 */
export async function d1Query(baseUrl, sql, params = [], binding = 'DB') {
  const api = new URL('/cdn-cgi/local/explorer/api/d1/database', baseUrl)
  const listing = JSON.parse((await oneRequest(api)).text)
  const database = listing.result?.find((/** @type {{ name: string }} */ d) => d.name === binding)
  if (!database) throw new Error(`no ${binding} database in the local explorer: ${JSON.stringify(listing)}`)
  const res = await oneRequest(new URL(`${api.pathname}/${database.uuid}/raw`, baseUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sql, params: params.map(String) }),
  })
  const body = JSON.parse(res.text)
  const result = body.result?.[0]
  if (res.status !== 200 || !body.success || !result?.success) throw new Error(`D1 query failed: ${res.text}`)
  const { columns, rows } = result.results
  return rows.map((row) => Object.fromEntries(columns.map((c, i) => [c, row[i]])))
}

/**
 * Adds projects to a running server. A project's `publicToken` is its public token for the
 * frontend SDKs (a random one when not given); its `shard` the D1 shard holding its data (0 unless
 * given).
 */
/** @param {string} baseUrl @param {TestProject[]} projects */
export async function seedProjects(baseUrl, projects) {
  if (projects.length === 0) return
  const params = []
  const rows = projects.map((p) => {
    const hash = createHash('sha256').update(p.secret).digest('hex')
    const publicToken = p.publicToken ?? `public-token-${p.env}-${randomUUID()}`
    params.push(p.id, p.env, hash, JSON.stringify(p.settings ?? {}), Date.now(), publicToken, p.shard ?? 0)
    const n = params.length
    return `(?${n - 6}, ?${n - 5}, 'node test', ?${n - 4}, ?${n - 3}, ?${n - 2}, ?${n - 1}, ?${n})`
  })
  await d1Query(
    baseUrl,
    `INSERT INTO projects (id, env, name, secret_hash, settings, created_at, public_token, shard) VALUES ${rows.join(', ')}`,
    params,
  )
  // A project on another shard also gets there the anchor row its rows' foreign keys point at.
  for (const p of projects.filter((p) => (p.shard ?? 0) !== 0)) {
    await d1Query(
      baseUrl,
      `INSERT INTO projects (id, env, name, secret_hash, settings, created_at, shard) VALUES (?1, ?2, 'node test', '', '{}', ?3, ?4)`,
      [p.id, p.env, Date.now(), p.shard ?? 0],
      `DB_${p.shard}`,
    )
  }
}

/**
 * Starts the Worker and resolves once GET /health answers. `projects` are created besides the local
 * test project; `vars` are extra `NAME:VALUE` Worker variables; `ports` is the [first, last] range
 * the port is taken from; `script` is the dev script (another Worker's, such as the web-login
 * example's, takes the same options); `entry` replaces the Worker's entry point (the bench's);
 * `registry` is the dev registry directory the server joins (a new one of its own unless given: a
 * Service Binding of another test server started with the same `registry` reaches it, and nothing
 * else does, not even the developer's own `npm run dev`). The caller must call stop(); if this
 * process ends first, the server ends too.
 * @param {ServerOptions} [options]
 * @returns {Promise<TestServer>}
 */
export async function startServer({
  projects = [],
  vars = [],
  ports = [FIRST_PORT, FIRST_PORT + 199],
  script = 'scripts/dev.mjs',
  entry,
  registry,
} = {}) {
  if (!existsSync(script)) throw new Error('run from the repository root')
  const ownRegistry = registry === undefined ? mkdtempSync(join(tmpdir(), 'whatsapp-otp-node-registry-')) : undefined
  // Removed by stop(), or when this process ends first (the server's state goes with killOnExit).
  const dropRegistry = () => {
    if (ownRegistry) rmSync(ownRegistry, { recursive: true, force: true })
  }
  process.once('exit', dropRegistry)
  let first = ports[0]
  for (let attempt = 1; ; attempt++) {
    const port = await freePort([first, ports[1]])
    try {
      const server = await startOn(port, { vars, script, entry, registry: registry ?? String(ownRegistry) })
      await seedProjects(server.baseUrl, projects).catch(async (err) => {
        await server.stop()
        throw err
      })
      return {
        ...server,
        stop: async (options) => {
          await server.stop(options)
          process.off('exit', dropRegistry)
          dropRegistry()
        },
      }
    } catch (err) {
      // Another process (a test run in another checkout, say) took the port between the probe and
      // wrangler's bind: the next one.
      if (!(err instanceof PortTaken) || attempt === 3) {
        process.off('exit', dropRegistry)
        dropRegistry()
        throw err
      }
      first = port + 1
    }
  }
}

class PortTaken extends Error {}

/**
 * @param {number} port
 * @param {{ vars: string[], script: string, entry?: string, registry: string }} options
 * @returns {Promise<TestServer>}
 */
async function startOn(port, { vars, script, entry, registry }) {
  const persistTo = mkdtempSync(join(tmpdir(), 'whatsapp-otp-node-test-'))
  const args = [script, '--port', String(port), '--persist-to', persistTo]
  for (const v of vars) args.push('--var', v)
  if (entry) args.push('--entry', entry)
  // wrangler's local explorer API (on by default) is how seedProjects and d1Query reach D1.
  const env = { ...process.env, WRANGLER_REGISTRY_PATH: registry, X_LOCAL_EXPLORER: 'true' }
  // Its own process group, so stop() ends wrangler and the workerd it starts, and nothing else.
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env })
  if (child.pid === undefined) throw new Error(`could not start ${script}`)
  const pid = child.pid
  let output = ''
  // Set once this server says it listens on `port` ("Ready on http://127.0.0.1:<port>"): until then a
  // /health answer on that port may come from another process that took the port first (another
  // checkout's tests), whose wrangler then exits on "Address already in use" a moment later.
  let bound = false
  const readyLine = new RegExp(`Ready on http://127\\.0\\.0\\.1:${port}\\b`)
  const keep = (chunk) => {
    output = (output + chunk).slice(-20_000)
    bound ||= readyLine.test(output)
  }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const forget = killOnExit(pid, persistTo)

  let stopped = false
  /**
   * Ends the server's process group. With `keepState` the state directory stays on disk for the
   * caller to read (no process writes to it any more) and to remove; by default it is deleted.
   */
  /** @param {{ keepState?: boolean }} [options] */
  async function stop({ keepState = false } = {}) {
    if (stopped) return
    stopped = true
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-pid, 'SIGTERM')
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }, STOP_TIMEOUT_MS)
      await exited
      clearTimeout(timer)
    }
    // wrangler's own children (workerd) may outlive it by a moment: nothing of the group survives.
    try {
      process.kill(-pid, 'SIGKILL')
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
      if (child.exitCode !== null) {
        if (/EADDRINUSE|address already in use/i.test(output)) throw new PortTaken(`port ${port} is taken`)
        throw new Error(`the server exited with code ${child.exitCode}`)
      }
      try {
        const res = bound ? await oneRequest(new URL('/health', baseUrl), { timeoutMs: 2_000 }) : null
        if (res?.status === 200) break
      } catch {
        // not answering yet
      }
      if (Date.now() > deadline) throw new Error(`the server did not answer within ${READY_TIMEOUT_MS} ms`)
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  } catch (err) {
    await stop()
    if (err instanceof PortTaken) throw err
    throw new Error(`${err.message}\n--- server output ---\n${output}`)
  }
  return { baseUrl, port, persistTo, registry, stop, output: () => output }
}

/**
 * The server `npm run test:node` starts for all test files (test/node/run.mjs), or null when the
 * file runs alone. The runner starts it while the first files already run, and writes where it
 * answers to the file TEST_SERVER_INFO names once it does; this waits for that. Its stop() does
 * nothing: the runner stops it after the last file.
 */
/** @returns {Promise<TestServer | null>} */
export async function sharedServer() {
  const infoFile = process.env.TEST_SERVER_INFO
  if (!infoFile) return null
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (!existsSync(infoFile)) {
    if (Date.now() > deadline) throw new Error(`the shared test server was not ready within ${READY_TIMEOUT_MS} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  const info = JSON.parse(readFileSync(infoFile, 'utf8'))
  if (info.error) throw new Error(`the shared test server did not start: ${info.error}`)
  return {
    baseUrl: info.baseUrl,
    port: info.port,
    // Another process on the shared state (wrangler d1 execute, the operator scripts) would meet the
    // other files' writes to the database file: such a file asks for a server of its own.
    /** @returns {string} */
    get persistTo() {
      throw new Error("the shared test server's state directory is not for other processes: pass own: true")
    },
    registry: info.registry,
    stop: async () => {},
    output: () => "(the shared server's output goes to the runner)",
  }
}

/**
 * A server for a test file, with `projects` added: the shared one when there is one and the file
 * does not need its own (`own: true`, or `vars`, `script` or `entry`, which only a server of its
 * own can have), otherwise a new one (startServer's options). The caller calls stop() when done;
 * it ends only a server of the file's own.
 * @param {ServerOptions & { own?: boolean }} [options]
 * @returns {Promise<TestServer>}
 */
export async function serverFor({ own = false, ...options } = {}) {
  const needsOwn = own || options.vars?.length || options.script || options.entry
  const shared = needsOwn ? null : await sharedServer()
  if (!shared) return startServer(options)
  await seedProjects(shared.baseUrl, options.projects ?? [])
  return shared
}

/**
 * The service for the calling test file's tests (serverFor's options), from before() to after().
 * `ready(server)` runs once it answers, within the same `timeout`: the file keeps its server and
 * makes its clients or seeds its state there.
 * @param {ServerOptions & { own?: boolean }} options
 * @param {(server: TestServer) => unknown} ready
 * @param {{ timeout?: number }} [hookOptions]
 */
export function serveDuringTests(options, ready, { timeout = 180_000 } = {}) {
  let server
  before(
    async () => {
      server = await serverFor(options)
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
