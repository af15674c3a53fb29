// `npm run loadtest`: a bounded load run against the Worker started exactly as `npm run dev` starts it
// (test/node/server.mjs: scripts/dev.mjs, a fresh --persist-to directory, a port in 8850-8899, only
// 127.0.0.1), with a project whose abuse limits are raised (validated like `npm run project:create`).
// 1. Mixed load: --requests requests at --concurrency over --phones numbers, many repeated
//    (scripts/loadtest-workload.mjs). No reply may be a 5xx or outside its expected statuses.
// 2. Drain: waits (bounded) until the queue consumer has sent nothing new for --quiet-seconds, read
//    through the Worker's dev outbox.
// 3. Checks through the Worker: every number's outbox; every number's current code authenticates
//    once, and not twice.
// 4. Checks in D1, read only after the server has stopped (a second process reading the database
//    file while the dev server writes to it can fail with SQLITE_BUSY): users and phones = distinct
//    numbers; every accepted send has one delivery, sent to the outbox exactly once or dropped because
//    a newer code replaced it first, none still pending; the outbox holds exactly the sent ones.
// Prints the figures; exits 1 if any check fails. The server is stopped and its state removed
// whatever happens.
//   npm run loadtest -- [--requests 5000] [--concurrency 50] [--phones 1200] [--cooldown 1] [--seed N]
//                       [--max-seconds 1800] [--quiet-seconds 10]
import { randomUUID } from 'node:crypto'
import { rmSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { ProjectSettingsSchema } from '../src/settings.ts'
import LENIENT_LIMITS from '../test/lenient-limits.json' with { type: 'json' }
import { startServer } from '../test/node/server.mjs'
import { d1Execute, lit } from './d1.mjs'
import { failedReplies, formatReport } from './loadtest-report.mjs'
import { buildRequest, EXPECTED, Ledger, plan, prng } from './loadtest-workload.mjs'

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '50' },
    phones: { type: 'string', default: '1200' },
    // The workload (which number each request uses, in which order) comes from this seed, so two runs
    // send the same requests; 'random' draws a new one. Either way the seed is printed.
    seed: { type: 'string', default: '20261130' },
    // A budget for the whole run, generous enough for a busy 2-core machine: the run is about
    // correctness under concurrency; the figures it prints are not pass/fail.
    'max-seconds': { type: 'string', default: '1800' },
    // Seconds between two sends to one number. 0 lets concurrent sends to a number both commit, and
    // then the later code can lose its KV record to the earlier send's slower write (see
    // docs/reliability.md, Load); 1 s keeps every repeat but refuses simultaneous ones.
    cooldown: { type: 'string', default: '1' },
    // The drain ends when the outbox has had no new message for this long. The consumer takes a
    // batch at least every second while jobs are queued (max_batch_timeout = 1), and jobs leave the
    // queue in order, so superseded jobs (which add no message) are interleaved with sent ones; a job
    // still pending when the server stops fails the run in the D1 checks, it is never missed.
    'quiet-seconds': { type: 'string', default: '10' },
  },
})
const clamp = (raw, min, max) => Math.min(Math.max(Math.floor(Number(raw)) || min, min), max)
const REQUESTS = clamp(values.requests, 100, 20_000)
const CONCURRENCY = clamp(values.concurrency, 1, 200)
const PHONES = clamp(values.phones, 10, 8_000)
const SEED = values.seed === 'random' ? Math.floor(Math.random() * 2 ** 31) : clamp(values.seed, 0, 2 ** 31)
const MAX_SECONDS = clamp(values['max-seconds'], 30, 3_600)
const DEADLINE = Date.now() + MAX_SECONDS * 1000
const COOLDOWN = clamp(values.cooldown, 0, 60)
const QUIET_MS = clamp(values['quiet-seconds'], 2, 120) * 1000
const PORTS = [8850, 8899]
const REQUEST_TIMEOUT_MS = 30_000

const PROJECT = {
  id: `project-test-${randomUUID()}`,
  secret: `secret-test-loadtest-${randomUUID()}`,
  env: 'test',
  settings: ProjectSettingsSchema.parse({
    ...LENIENT_LIMITS,
    otp_max_attempts: 20,
    user_lock_threshold: 100,
    phone_send_cooldown_seconds: COOLDOWN,
  }),
}
const AUTH = `Basic ${Buffer.from(`${PROJECT.id}:${PROJECT.secret}`).toString('base64')}`

const failures = []
const check = (ok, message) => {
  if (!ok) failures.push(message)
  return ok
}

/**
 * One request; a transport failure or timeout counts as status 0. A GET (idempotent) is sent once more
 * when the server had closed the pooled connection before the request reached it: after the drain
 * phase the client's kept-alive connections have idled past the server's keep-alive timeout.
 */
/**
 * @param {string} baseUrl
 * @param {{ method: string, path: string, headers: Record<string, string>, body?: string }} request
 * @param {boolean} [retried]
 */
async function send(baseUrl, { method, path, headers, body }, retried = false) {
  const started = performance.now()
  const signal = AbortSignal.timeout(Math.max(1, Math.min(REQUEST_TIMEOUT_MS, DEADLINE - Date.now())))
  try {
    const res = await fetch(new URL(path, baseUrl), { method, headers, body, signal })
    const text = await res.text()
    return { status: res.status, text, ms: performance.now() - started }
  } catch (err) {
    if (method === 'GET' && !retried && err?.cause?.code === 'UND_ERR_SOCKET') {
      return send(baseUrl, { method, path, headers, body }, true)
    }
    return { status: 0, text: `${err} ${err?.cause ?? ''}`.trim(), ms: performance.now() - started }
  }
}

/** Runs `count` requests, `concurrency` at a time; `next(i)` builds the i-th when its turn comes. */
async function pool(count, concurrency, next, onReply) {
  let index = 0
  const worker = async () => {
    while (index < count && Date.now() < DEADLINE) {
      const i = index++
      const request = next(i)
      onReply(request, await send(BASE_URL, request))
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
  return index
}

/** D1 read from the state directory the stopped server left behind (never while it runs). */
const d1 = (sql) => d1Execute({ sql, json: true, persistTo: PERSIST_TO })[0]?.results ?? []

let BASE_URL = ''
let PERSIST_TO = ''

async function mixedLoad() {
  const random = prng(SEED)
  const kinds = plan(REQUESTS, random)
  const ledger = new Ledger()
  const byKind = {}
  const latencies = []
  const started = performance.now()
  const sent = await pool(
    REQUESTS,
    CONCURRENCY,
    (i) => buildRequest(kinds[i], { random, ledger, phones: PHONES, auth: AUTH, project: PROJECT }),
    (request, reply) => {
      latencies.push(reply.ms)
      byKind[request.kind] ??= {}
      const counts = byKind[request.kind]
      counts[reply.status] = (counts[reply.status] ?? 0) + 1
      if (!EXPECTED[request.kind].includes(reply.status)) {
        check(false, `${request.kind} ${request.method} ${request.path} -> ${reply.status} ${reply.text.slice(0, 200)}`)
      }
      if (reply.status === 200 && (request.kind === 'login' || request.kind === 'send')) {
        ledger.accepted(request.number, JSON.parse(reply.text))
      }
    },
  )
  const seconds = (performance.now() - started) / 1000
  latencies.sort((a, b) => a - b)
  check(sent === REQUESTS, `only ${sent} of ${REQUESTS} requests were sent before the deadline`)
  check(
    ledger.inconsistent.length === 0,
    `answers disagree on a number's user: ${JSON.stringify(ledger.inconsistent[0])}`,
  )
  return { ledger, byKind, seconds, sent, latencies }
}

/**
 * Waits until the queue consumer has settled the deliveries: the project's newest outbox message
 * (read through the Worker) has stayed the same for QUIET_MS. Returns the seconds waited.
 */
async function drain() {
  const started = performance.now()
  let newest
  let since = performance.now()
  for (;;) {
    const reply = await send(BASE_URL, {
      method: 'GET',
      path: '/dev/whatsapp/outbox?limit=1',
      headers: { authorization: AUTH },
    })
    if (!check(reply.status === 200, `outbox -> ${reply.status} ${reply.text.slice(0, 200)}`)) {
      return (performance.now() - started) / 1000
    }
    const id = JSON.parse(reply.text).messages[0]?.id
    if (id !== newest) {
      newest = id
      since = performance.now()
    } else if (performance.now() - since >= QUIET_MS) {
      // Drained when the last message arrived; the quiet period only confirmed it.
      return (since - started) / 1000
    }
    if (Date.now() > DEADLINE) {
      check(false, 'the outbox was still growing at the deadline')
      return (performance.now() - started) / 1000
    }
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
}

/** Every number's delivered messages, newest first, read through the API as a developer would. */
async function readOutboxes(ledger) {
  const numbers = [...ledger.phones.keys()]
  const outbox = new Map()
  await pool(
    numbers.length,
    CONCURRENCY,
    (i) => ({
      number: numbers[i],
      method: 'GET',
      path: `/dev/whatsapp/outbox?phone_number=${encodeURIComponent(numbers[i])}&limit=100`,
      // The outbox lists the messages of the test project whose credentials it is given.
      headers: { authorization: AUTH },
    }),
    (request, reply) => {
      if (!check(reply.status === 200, `outbox for ${request.number} -> ${reply.status}`)) return
      outbox.set(request.number, JSON.parse(reply.text).messages)
    },
  )
  return outbox
}

/**
 * Storage against what the clients were told and what the outbox showed: users, phones, deliveries.
 * Runs after the server has stopped, on the state directory it left.
 */
function storageChecks(ledger, outbox) {
  const project = lit(PROJECT.id)
  const [users] = d1(`SELECT COUNT(*) AS n FROM users WHERE project_id = ${project}`)
  const [phones] = d1(
    `SELECT COUNT(*) AS n, COUNT(DISTINCT phone_number) AS numbers FROM phones WHERE project_id = ${project}`,
  )
  const deliveries = d1(`SELECT id, status, error_detail FROM deliveries WHERE project_id = ${project}`)
  const distinct = ledger.phones.size
  check(users?.n === distinct, `users in D1 ${users?.n} != distinct numbers ${distinct}`)
  check(phones?.n === distinct && phones?.numbers === distinct, `phones in D1 ${phones?.n} != ${distinct}`)
  check(
    deliveries.length === ledger.acceptedSends,
    `deliveries ${deliveries.length} != accepted sends ${ledger.acceptedSends}`,
  )
  const pending = deliveries.filter((d) => d.status === 'queued' || d.status === 'sending').length
  check(pending === 0, `${pending} deliveries still pending when the server stopped (the drain ended too early)`)
  const sentIds = new Set(deliveries.filter((d) => d.status === 'sent').map((d) => d.id))
  const isSuperseded = (d) => d.status === 'expired' && d.error_detail === 'code_superseded'
  const superseded = deliveries.filter(isSuperseded).length
  const other = deliveries.length - sentIds.size - superseded
  const example = deliveries.find((d) => d.status !== 'sent' && !isSuperseded(d))
  check(other === 0, `${other} deliveries neither sent nor superseded, e.g. ${JSON.stringify(example)}`)

  const outboxIds = [...outbox.values()].flatMap((messages) => messages.map((m) => m.id))
  const unique = new Set(outboxIds)
  check(unique.size === outboxIds.length, `${outboxIds.length - unique.size} deliveries appear twice in the outbox`)
  const missing = [...sentIds].filter((id) => !unique.has(id)).length
  const stray = outboxIds.filter((id) => !sentIds.has(id)).length
  check(missing === 0 && stray === 0, `outbox vs sent deliveries: ${missing} missing, ${stray} not marked sent`)
  return {
    users: users?.n,
    phones: phones?.n,
    deliveries: deliveries.length,
    sent: sentIds.size,
    superseded,
    other,
    outbox,
    outboxRows: outboxIds.length,
  }
}

/** Every number's delivered codes, newest first: exactly one logs in, and only once. */
async function authenticateAll(outbox, ledger) {
  const numbers = [...outbox.keys()]
  let ok = 0
  let replaysRefused = 0
  let olderRefused = 0
  let requests = 0
  const started = performance.now()
  const auth = (phoneId, code) => ({
    method: 'POST',
    path: '/v1/otps/authenticate',
    headers: { authorization: AUTH, 'content-type': 'application/json' },
    body: JSON.stringify({ method_id: phoneId, code }),
  })
  let next = 0
  const worker = async () => {
    while (next < numbers.length && Date.now() < DEADLINE) {
      const number = numbers[next++]
      const messages = outbox.get(number)
      const phoneId = ledger.phones.get(number).phoneId
      let successes = 0
      for (const m of messages) {
        const reply = await send(BASE_URL, auth(phoneId, m.code))
        requests++
        if (reply.status === 200) {
          successes++
          ok++
          const replay = await send(BASE_URL, auth(phoneId, m.code))
          requests++
          if (check(replay.status === 401, `replayed code for ${number} -> ${replay.status}`)) replaysRefused++
        } else if (
          check(
            reply.status === 401 || reply.status === 404,
            `older code for ${number} -> ${reply.status} ${reply.text.slice(0, 120)}`,
          )
        ) {
          olderRefused++
        }
      }
      check(successes === 1, `${number}: ${successes} of ${messages.length} delivered codes authenticated (expected 1)`)
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, numbers.length) }, worker))
  return { ok, replaysRefused, olderRefused, requests, seconds: (performance.now() - started) / 1000 }
}

async function main() {
  console.error(`loadtest: seed ${SEED}; starting the Worker as npm run dev does (ports ${PORTS.join('-')})`)
  const server = await startServer({ projects: [PROJECT], ports: PORTS })
  BASE_URL = server.baseUrl
  PERSIST_TO = server.persistTo
  try {
    console.error(`loadtest: ${REQUESTS} mixed requests at concurrency ${CONCURRENCY} on ${BASE_URL}`)
    const load = await mixedLoad()
    console.error('loadtest: waiting for the queue consumer to drain')
    const drainSeconds = await drain()
    const outbox = await readOutboxes(load.ledger)
    console.error('loadtest: authenticating every delivered code')
    const auth = await authenticateAll(outbox, load.ledger)
    if (Date.now() > DEADLINE) {
      // Every request after the deadline times out at once; say why before the failures that follow.
      failures.unshift(
        `the run took longer than --max-seconds ${MAX_SECONDS}; on a slow or busy machine raise it (at most 3600)`,
      )
    }
    console.error('loadtest: stopping the Worker, then checking its D1 state')
    await server.stop({ keepState: true })
    const storage = storageChecks(load.ledger, outbox)
    const failed = failedReplies(load.byKind)
    check(failed === 0, `${failed} replies were 5xx or failed`)
    const settings = { seed: SEED, requests: REQUESTS, concurrency: CONCURRENCY, phones: PHONES, cooldown: COOLDOWN }
    console.log(formatReport({ settings, load, drainSeconds, storage, auth, failures }))
  } finally {
    await server.stop({ keepState: true })
    if (PERSIST_TO) rmSync(PERSIST_TO, { recursive: true, force: true })
  }
}

main()
  .catch((err) => {
    failures.push(String(err?.stack ?? err))
    console.log(`RESULT: FAIL\n  - ${err?.stack ?? err}`)
  })
  .finally(() => process.exit(failures.length === 0 ? 0 : 1))
