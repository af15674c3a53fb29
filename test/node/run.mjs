// `npm run test:node`: the Node-side tests (test/node/*.test.mjs, or the files named on the command
// line) against one shared server. Starts the service as `npm run dev` does (test/node/server.mjs)
// and, at the same time, the test files with Node's test runner, several at a time, each in a
// process of its own. Once the server answers, the runner writes where (its URL, state directory and
// dev registry) to the file TEST_SERVER_INFO names; serveDuringTests / serverFor wait for it and add
// each file's projects to that server. Files that need no server do not wait. The server is stopped
// when the last file is done.
//
//   npm run test:node                                   # every file
//   npm run test:node -- test/node/sdk-otp.test.mjs     # some files (any `node --test` option too)
//   TEST_NODE_CONCURRENCY=1 npm run test:node           # one file at a time
//
// The files mostly wait (on HTTP, the queue consumer, Chromium, wrangler), so several run side by
// side even on two cores.
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { d1MigratedTemplate } from '../../scripts/d1.mjs'
import { startServer } from './server.mjs'

// Most files wait most of the time (HTTP, the queue consumer, Chromium, wrangler): on two cores eight
// at once finished the suite in 158 s where four took 190 s.
const CONCURRENCY = process.env.TEST_NODE_CONCURRENCY ?? '8'

const args = process.argv.slice(2)
const named = args.some((a) => !a.startsWith('-'))
const files = named
  ? []
  : readdirSync('test/node')
      .filter((f) => f.endsWith('.test.mjs'))
      .sort()
      .map((f) => `test/node/${f}`)

const dir = mkdtempSync(join(tmpdir(), 'whatsapp-otp-node-run-'))
const infoFile = join(dir, 'server.json')
/** Written whole and then renamed, so a reader never sees half of it. */
function publish(info) {
  writeFileSync(`${infoFile}.tmp`, JSON.stringify(info))
  renameSync(`${infoFile}.tmp`, infoFile)
}

// One state directory migrated first: every test server and script state starts as a copy of it
// (d1MigrationsEnsureLocal) instead of applying every migration to every shard again.
const template = join(dir, 'migrated-state')
d1MigratedTemplate(template)
process.env.D1_MIGRATED_TEMPLATE = template

const started = Date.now()
const serverStarting = startServer().then(
  (server) => {
    const seconds = ((Date.now() - started) / 1000).toFixed(1)
    console.log(`# shared test server on ${server.baseUrl} (ready in ${seconds} s)`)
    publish({ baseUrl: server.baseUrl, port: server.port, persistTo: server.persistTo, registry: server.registry })
    return server
  },
  (err) => {
    console.error(err)
    publish({ error: err.message.split('\n')[0] })
    return null
  },
)

const child = spawn(
  process.execPath,
  ['--test', `--test-concurrency=${CONCURRENCY}`, '--test-timeout=600000', ...args, ...files],
  { stdio: 'inherit', env: { ...process.env, TEST_SERVER_INFO: infoFile } },
)
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) process.on(signal, () => child.kill(signal))
const code = await new Promise((resolve) => child.once('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))))
await (await serverStarting)?.stop()
rmSync(dir, { recursive: true, force: true })
process.exit(code)
