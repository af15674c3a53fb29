// `npm run bench`: starts the Worker as `npm run dev` does (test/node/server.mjs runs scripts/dev.mjs
// with a fresh state directory), through the bench's own entry point src/bench/entry.ts (the
// production Worker plus the storage accounting; same configuration), loads it with autocannon on 127.0.0.1 only, and prints
// a Markdown table: req/s, p50/p99 latency, throughput relative to the bare GET /health of the same
// run, and storage operations per request counted by the Worker itself (BENCH_COUNT_STORAGE=1,
// src/bench/storage-count.ts), plus the deployable bundle size. Bounded: a fixed number of requests
// per scenario, a time cap per scenario and for the whole run; it stops the server whatever happens.
// Each scenario is timed from its first request to its last reply. A history scenario then seeds the
// limit counters a busy project holds (N sends in the last hour: N per-phone rows, the per-country and
// new-user buckets summing to N) and runs login_or_create at N = 0, N / 10 and N. A search scenario
// seeds a second project with many users (SQL in bulk) and times users.search on it, alone and while
// another project's requests wait for the same database. A shards step runs login_or_create one at
// a time for a project on shard 0 alone, on shard 1 (wrangler.toml DB_1) alone, then for two projects
// at once: both on shard 0, then one on shard 0 and one on shard 1, with each request's D1 time.
//   npm run bench -- [--requests 1000] [--connections 10] [--max-seconds 120] [--history 1000000]
//                    [--search-users 200000] [--only search|shards]
import { readFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { startServer } from '../test/node/server.mjs'
import {
  BENCH_ENTRY,
  BENCH_VARS,
  benchProject,
  CODE_MINUTES,
  jsonHeaders,
  codesFromOutbox as outboxCodes,
  phone,
  load as runLoad,
  WARMUP_PHONES,
  warmUp,
  withDeadline,
  wrong,
} from './bench-load.mjs'
import { formatReport, formatSearchReport, formatShardReport, targetChecks } from './bench-report.mjs'
import { BUNDLE_TARGET_GZIP_BYTES, measureBundle } from './bundle-size.mjs'
import { groupCpu, serverProcessGroup, untilQuiet } from './server-cpu.mjs'

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '1000' },
    history: { type: 'string', default: '1000000' },
    connections: { type: 'string', default: '10' },
    'max-seconds': { type: 'string', default: '120' },
    'search-users': { type: 'string', default: '200000' },
    only: { type: 'string' },
  },
})
if (values.only !== undefined && values.only !== 'search' && values.only !== 'shards') {
  throw new Error('--only takes search or shards')
}
const ONLY_SEARCH = values.only === 'search'
const ONLY_SHARDS = values.only === 'shards'
// Distinct phones, one per request: +1 202 555 0100 … 9999 (all valid US numbers for libphonenumber).
const N = Math.min(Math.max(Number(values.requests) || 0, 50), 10_000 - WARMUP_PHONES)
const CONNECTIONS = Math.min(Math.max(Number(values.connections) || 0, 1), 100)
const MAX_SECONDS = Math.min(Math.max(Number(values['max-seconds']) || 0, 5), 300)
const HISTORY = Math.min(Math.max(Number(values.history) || 0, 0), 10_000_000)
// The bare route answers several times faster than the scenarios: more requests, so it also runs seconds.
const BARE_REQUESTS = 3 * N
// Requests of each history run (distinct new numbers after the main scenarios' ones).
const HISTORY_REQUESTS = Math.min(N, Math.floor((10_000 - WARMUP_PHONES - N) / 3))
const SEED_CHUNK = 250_000
const SEARCH_USERS = Math.min(Math.max(Number(values['search-users']) || 0, 0), 2_000_000)
const SEARCH_SEED_CHUNK = 50_000
// Searches per search run (one at a time: each reply's latency is the search's own).
const SEARCH_REQUESTS = Math.min(N, 200)
const RUN_DEADLINE_MINUTES = 30
const PORTS = [8800, 8849]

// Limits raised (through the same validation as `npm run project:create`) so that no request of the
// bench is refused by an abuse limit: each phone gets two sends and one wrong code at most.
const BENCH_PROJECT = benchProject()

// The search scenario's project: a second tenant of the same database, with the bench's raised limits.
const SEARCH_PROJECT = benchProject()

// The same search load on a third project with the default settings, whose search budget
// (search_rows_per_minute) refuses what it cannot afford.
const BUDGET_PROJECT = benchProject({})

// The shards step's projects (bench limits): one per run and side, so every send is for a new number.
// `shard` places each (test/node/server.mjs seeds it there, as `npm run project:create -- --shard N`).
/** @param {number} shard */
const shardProject = (shard) => ({ ...benchProject(), shard })
const SHARD_RUNS = [
  { name: 'shard 0 alone', projects: [shardProject(0)] },
  { name: 'shard 1 alone', projects: [shardProject(1)] },
  { name: 'two projects on shard 0 at once', projects: [shardProject(0), shardProject(0)] },
  { name: 'two projects on shards 0 and 1 at once', projects: [shardProject(0), shardProject(1)] },
]
// Sends per project and run in the shards step.
const SHARD_REQUESTS = Math.min(N, 300)

const headers = jsonHeaders(BENCH_PROJECT)

/**
 * @typedef {{ name: string, method?: string, path: string, body?: (i: number) => unknown, amount: number,
 *   expect: number, also?: number[], onBody?: (i: number, reply: any) => unknown, connections?: number,
 *   project?: { id: string, secret: string } }} Scenario
 */

/** One scenario (bench-load.mjs), at most MAX_SECONDS, from CONNECTIONS connections unless it says otherwise. */
const load = (baseUrl, spec) =>
  runLoad(baseUrl, { connections: CONNECTIONS, maxSeconds: MAX_SECONDS, defaultProject: BENCH_PROJECT, ...spec })
/** Each phone's newest code from the dev outbox of `project` (the bench's own unless given). */
const codesFromOutbox = (baseUrl, phones, sendsEach, project = BENCH_PROJECT) =>
  outboxCodes(baseUrl, project, phones, sendsEach)

/**
 * login_or_create for new numbers with 0, HISTORY / 10 and HISTORY sends already counted in the last
 * hour (the seeding grows the same project's counters step by step; src/bench/history.ts).
 */
async function historyRuns(url, scenario) {
  const runs = []
  let seeded = 0
  for (const [step, total] of [0, Math.round(HISTORY / 10), HISTORY].entries()) {
    const started = performance.now()
    for (let from = seeded; from < total; from += SEED_CHUNK) {
      const res = await fetch(new URL('/__bench/history', url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ project_id: BENCH_PROJECT.id, from, total: Math.min(from + SEED_CHUNK, total) }),
      })
      if (!res.ok) throw new Error(`seeding the history answered ${res.status}: ${await res.text()}`)
    }
    // The buckets hold their share of the full total once the last chunk is in.
    seeded = total
    if (total > 0)
      console.error(`bench: seeded ${total} events in ${((performance.now() - started) / 1000).toFixed(1)} s`)
    const first = WARMUP_PHONES + N + step * HISTORY_REQUESTS
    const phones = Array.from({ length: HISTORY_REQUESTS }, (_, i) => phone(first + i))
    const row = await scenario(
      {
        name: `login_or_create, ${total.toLocaleString('en-US')} events in the window`,
        path: '/v1/otps/whatsapp/login_or_create',
        body: (i) => ({ phone_number: phones[i], expiration_minutes: CODE_MINUTES }),
        amount: HISTORY_REQUESTS,
        expect: 200,
      },
      // The queue consumer delivers these codes before the next run, as after the main scenarios.
      () => codesFromOutbox(url, phones, 1),
    )
    row.events = total
    runs.push(row)
  }
  return runs
}

/**
 * What one local D1 database sustains: login_or_create and authenticate one at a time (1 connection),
 * so each request's D1 time (X-D1-Rows ms) is the database's own work for it, without waiting for
 * others. D1 runs one query at a time, so 1000 / (D1 ms per request) is the requests per second this
 * database could serve if nothing else limited them.
 */
async function capacityRuns(url) {
  const first = WARMUP_PHONES + N + 3 * HISTORY_REQUESTS
  const amount = Math.min(300, 10_000 - first)
  const phones = Array.from({ length: amount }, (_, i) => phone(first + i))
  const methods = new Array(amount)
  const send = await load(url, {
    name: 'login_or_create, one at a time',
    path: '/v1/otps/whatsapp/login_or_create',
    body: (i) => ({ phone_number: phones[i], expiration_minutes: CODE_MINUTES }),
    onBody: (i, reply) => (methods[i] = reply.phone_id),
    amount,
    expect: 200,
    connections: 1,
  })
  const codes = await codesFromOutbox(url, phones, 1)
  const auth = await load(url, {
    name: 'authenticate (right code), one at a time',
    path: '/v1/otps/authenticate',
    body: (i) => ({ method_id: methods[i], code: codes[i] }),
    amount,
    expect: 200,
    connections: 1,
  })
  return [send, auth]
}

/**
 * Projects on two D1 shards: login_or_create one request at a time per project (1 connection each),
 * for a project on shard 0 alone, on shard 1 alone, then two projects at once on the same shard,
 * then on shards 0 and 1.
 * Each request's D1 time is its database's work for it (plus, on a shared database, the wait for the
 * other project's statements): 1000 / that time is what the database would sustain for the project.
 * Each run's codes are delivered by the queue consumer before the next run starts.
 */
async function shardRuns(url) {
  // Numbers of their own: none of them is one the console provider treats as not on WhatsApp.
  const phones = Array.from({ length: SHARD_REQUESTS }, (_, i) => phone(5_000 + i))
  const loadAverage = loadavg()[0]
  const runs = []
  for (const { name, projects } of SHARD_RUNS) {
    const results = await Promise.all(
      projects.map((project, side) =>
        load(url, {
          name: `${name}: project ${side + 1} (shard ${project.shard})`,
          path: '/v1/otps/whatsapp/login_or_create',
          body: (i) => ({ phone_number: phones[i], expiration_minutes: CODE_MINUTES }),
          amount: SHARD_REQUESTS,
          expect: 200,
          connections: 1,
          project,
        }),
      ),
    )
    // The consumer's work for this run is done before the next run starts (it would compete for the CPUs).
    for (const project of projects) {
      await codesFromOutbox(url, phones, 1, project).catch((err) => console.error(`bench: ${name}: ${err.message}`))
    }
    runs.push({ name, sides: results.map((r, i) => ({ ...r, shard: projects[i].shard })) })
  }
  return { loadAverage, runs }
}

/** Latencies (ms) of `request()` run one after another until `done` settles (at least `min` times). */
async function sampleUntil(done, request, min = 1) {
  let settled = false
  done.finally(() => (settled = true))
  const latencies = []
  while (!settled || latencies.length < min) {
    const started = performance.now()
    await request()
    latencies.push(performance.now() - started)
  }
  return latencies
}

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/**
 * users.search on a second project holding SEARCH_USERS users (half with a verified number), seeded by
 * SQL in bulk (src/bench/search.ts): the same page of one user with no filter, one phone_verified
 * filter, and twenty identical ones joined by OR, one search at a time; then the twenty-filter search
 * from CONNECTIONS connections while another project reads one of its users one request at a time,
 * since D1 runs one query at a time for every project of the database. That project has the bench's
 * raised limits; the same concurrent searches then come from a third project, as many users, with the
 * default settings, whose search budget refuses what it cannot afford.
 */
async function searchRuns(url) {
  const started = performance.now()
  for (const project of [SEARCH_PROJECT, BUDGET_PROJECT]) {
    for (let from = 0; from < SEARCH_USERS; from += SEARCH_SEED_CHUNK) {
      const res = await fetch(new URL('/__bench/users', url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          project_id: project.id,
          from,
          total: Math.min(from + SEARCH_SEED_CHUNK, SEARCH_USERS),
        }),
      })
      if (!res.ok) throw new Error(`seeding the search users answered ${res.status}: ${await res.text()}`)
    }
  }
  const seedSeconds = (performance.now() - started) / 2 / 1000
  // The machine's 1-minute load average as the searches start: other work on it slows every figure.
  const loadAverage = loadavg()[0]
  console.error(`bench: seeded ${SEARCH_USERS} users in ${seedSeconds.toFixed(1)} s`)
  const unverified = { filter_name: 'phone_verified', filter_value: false }
  const twenty = { limit: 1, query: { operator: 'OR', operands: Array.from({ length: 20 }, () => unverified) } }
  const search = (name, body, connections = 1, project = SEARCH_PROJECT) => ({
    name,
    path: '/v1/users/search',
    body: () => body,
    amount: SEARCH_REQUESTS,
    expect: 200,
    // Past its budget a project's searches are refused.
    also: project === BUDGET_PROJECT ? [429] : [],
    connections,
    project,
  })
  const runs = []
  runs.push(await load(url, search('search, no filter, limit 1', { limit: 1 })))
  runs.push(
    await load(
      url,
      search('search, phone_verified = false, limit 1', {
        limit: 1,
        query: { operator: 'AND', operands: [unverified] },
      }),
    ),
  )
  const target = await load(url, search('search, 20 × phone_verified = false (OR), limit 1', twenty))
  runs.push(target)
  // Another project's read, alone and while the searches run from CONNECTIONS connections.
  const created = await fetch(new URL('/v1/users', url), {
    method: 'POST',
    headers,
    body: JSON.stringify({ phone_number: '+12125550100' }),
  })
  if (created.status !== 200) throw new Error(`users.create answered ${created.status}: ${await created.text()}`)
  const userUrl = new URL(`/v1/users/${(await created.json()).user_id}`, url)
  const get = async () => {
    const res = await fetch(userUrl, { headers: { authorization: headers.authorization } })
    if (res.status !== 200) throw new Error(`users.get answered ${res.status}`)
    await res.arrayBuffer()
  }
  const alone = await sampleUntil(Promise.resolve(), get, 50)
  const flood = load(
    url,
    search(`search, 20 × phone_verified = false (OR), ${CONNECTIONS} connections`, twenty, CONNECTIONS),
  )
  const during = await sampleUntil(flood, get)
  runs.push(await flood)
  const budgeted = load(
    url,
    search(
      `the same from a project with the default search budget, ${CONNECTIONS} connections`,
      twenty,
      CONNECTIONS,
      BUDGET_PROJECT,
    ),
  )
  const duringBudgeted = await sampleUntil(budgeted, get)
  runs.push(await budgeted)
  const otherProject = (name, latencies) => ({
    name,
    samples: latencies.length,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  })
  return {
    users: SEARCH_USERS,
    seedSeconds,
    loadAverage,
    runs,
    target,
    otherProject: [
      otherProject('GET /v1/users/{id} of another project, alone', alone),
      otherProject(`the same during the ${CONNECTIONS}-connection searches`, during),
      otherProject(`the same during the searches of the project with the default budget`, duringBudgeted),
    ],
  }
}

/** The queue consumer's work since the last reset (src/bench/storage-count.ts); `reset` starts it again from zero. */
async function deliveryCounts(url, { reset = false } = {}) {
  const res = await fetch(new URL('/__bench/delivery-counts', url), { method: reset ? 'POST' : 'GET' })
  if (!res.ok) throw new Error(`the delivery counts answered ${res.status}`)
  return res.json()
}

/**
 * `load` measured from the operating system: the server's CPU (every process of it, scripts/server-cpu.mjs)
 * from the first request until it is idle again, so the queue consumer's work for these requests
 * is in it, per request; what the consumer did meanwhile (per message), and the machine's load
 * average as the run started.
 */
async function measuredLoad(url, pgid, spec) {
  await deliveryCounts(url, { reset: true })
  const loadAverage = loadavg()[0]
  const before = groupCpu(pgid)
  const row = await load(url, spec)
  const quiet = await untilQuiet(pgid)
  row.cpuMs = (quiet.total - before.total) / row.requests
  row.loadAverage = loadAverage
  row.delivery = await deliveryCounts(url)
  return row
}

/** The main scenarios, history and capacity (everything but the search step): their report and whether all passed. */
async function mainRuns(url, pgid, machine, bundle) {
  await warmUp(url, BENCH_PROJECT, { amount: BARE_REQUESTS, connections: CONNECTIONS, maxSeconds: MAX_SECONDS })
  const phones = Array.from({ length: N }, (_, i) => phone(WARMUP_PHONES + i))
  const methods = new Array(N)
  // The bare route runs before the first scenario and after each one (once the queue consumer is idle
  // again): each scenario is compared with the bare runs right around it, as the machine's speed drifts.
  /** @type {any[]} */
  const bareRuns = []
  const bare = async () => {
    bareRuns.push(
      await measuredLoad(url, pgid, {
        name: 'GET /health (bare)',
        method: 'GET',
        path: '/health',
        amount: BARE_REQUESTS,
        expect: 200,
      }),
    )
  }
  /** @param {Scenario} spec @param {() => Promise<unknown>} [settle] */
  const scenario = async (spec, settle = async () => {}) => {
    const row = await measuredLoad(url, pgid, spec)
    await settle()
    await bare()
    row.bare = (bareRuns.at(-2).rps + bareRuns.at(-1).rps) / 2
    return row
  }
  await bare()
  /** @type {string[]} */
  let codes = []
  const fresh = await scenario(
    {
      name: 'login_or_create, new phones',
      path: '/v1/otps/whatsapp/login_or_create',
      body: (i) => ({ phone_number: phones[i], expiration_minutes: CODE_MINUTES }),
      onBody: (i, reply) => (methods[i] = reply.phone_id),
      amount: N,
      expect: 200,
    },
    async () => (codes = await codesFromOutbox(url, phones, 1)),
  )
  const auth = (name, code, expect) => ({
    name,
    path: '/v1/otps/authenticate',
    body: (i) => ({ method_id: methods[i], code: code(i) }),
    amount: N,
    expect,
  })
  // Wrong codes first: each phone's code is still live, and the right code then consumes it.
  const wrongCode = await scenario(auth('authenticate, wrong code', (i) => wrong(codes[i]), 404))
  const rightCode = await scenario(auth('authenticate, right code', (i) => codes[i], 200))
  // Existing users whose last code was used: the login of a returning user.
  const existing = await scenario(
    {
      name: 'login_or_create, existing phone',
      path: '/v1/otps/whatsapp/login_or_create',
      body: (i) => ({ phone_number: phones[i], expiration_minutes: CODE_MINUTES }),
      amount: N,
      expect: 200,
    },
    () => codesFromOutbox(url, phones, 2),
  )
  const rows = [fresh, existing, rightCode, wrongCode]
  const history = HISTORY > 0 ? await historyRuns(url, scenario) : []
  const capacity = await capacityRuns(url)
  return {
    report: [
      formatReport({ machine, bareRuns, rows, bundle, history, capacity }),
      targetChecks({ fresh, existing, rightCode, wrongCode, bundle, bundleTarget: BUNDLE_TARGET_GZIP_BYTES, history }),
    ],
    ok: [...bareRuns, ...rows, ...history, ...capacity].every((r) => r.ok),
  }
}

async function run() {
  const machine = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model?.trim() ?? 'unknown',
    node: process.version,
    wrangler: JSON.parse(readFileSync('node_modules/wrangler/package.json', 'utf8')).version,
    requests: N,
    bareRequests: BARE_REQUESTS,
    historyRequests: HISTORY_REQUESTS,
    connections: CONNECTIONS,
  }
  const bundle = ONLY_SEARCH || ONLY_SHARDS ? null : measureBundle()
  const server = await startServer({
    projects: [BENCH_PROJECT, SEARCH_PROJECT, BUDGET_PROJECT, ...SHARD_RUNS.flatMap((r) => r.projects)],
    vars: [...BENCH_VARS, 'BENCH_COUNT_STORAGE:1'],
    ports: PORTS,
    entry: BENCH_ENTRY,
  })
  try {
    const url = server.baseUrl
    const pgid = serverProcessGroup(server.persistTo)
    const main = ONLY_SEARCH || ONLY_SHARDS ? { report: [], ok: true } : await mainRuns(url, pgid, machine, bundle)
    const shards = ONLY_SEARCH ? null : await shardRuns(url)
    const search = SEARCH_USERS > 0 && !ONLY_SHARDS ? await searchRuns(url) : null
    for (const part of main.report) console.log(part)
    if (shards) console.log(formatShardReport(shards, machine))
    if (search) console.log(formatSearchReport(search, machine))
    const shardsOk = !shards || shards.runs.every((run) => run.sides.every((r) => r.ok))
    if (!main.ok || !shardsOk || (search && !search.runs.every((r) => r.ok))) process.exitCode = 1
  } finally {
    await server.stop()
  }
}

await withDeadline('bench', RUN_DEADLINE_MINUTES, run)
