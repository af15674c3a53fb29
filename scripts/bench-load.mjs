// Load generation shared by `npm run bench` (scripts/bench.mjs) and `npm run profile`
// (scripts/profile.mjs): the bench project, one distinct phone per request, autocannon runs on
// 127.0.0.1 with what the Worker reports per request (BENCH_COUNT_STORAGE=1), and the codes the
// queue consumer delivered to the dev outbox.
import { randomUUID } from 'node:crypto'
import autocannon from 'autocannon'
import { ProjectSettingsSchema } from '../src/settings.ts'
import LENIENT_LIMITS from '../test/lenient-limits.json' with { type: 'json' }

export const WARMUP_PHONES = 100
// Codes live 10 minutes (the most Stytch allows), not the default 2: on a slow or busy machine the
// scenarios between a send and its authenticate (bare runs, the outbox wait) can take longer than 2.
export const CODE_MINUTES = 10
// The production Worker wrapped in the storage accounting; src/index.ts itself carries none of it.
export const BENCH_ENTRY = 'src/bench/entry.ts'
// `npm run profile`'s floor: the storage round trips alone (src/bench/floor.ts).
export const FLOOR_ENTRY = 'src/bench/floor.ts'

/**
 * Worker variables of every bench and profile server: no number is one the console WhatsApp provider
 * treats as unreachable (.dev.vars lists one inside the bench's range), so every code reaches the outbox.
 */
export const BENCH_VARS = ['CONSOLE_WHATSAPP_UNREACHABLE:']

/**
 * Runs `run` (which starts a server with test/node/server.mjs), exiting the process if it is not done
 * after `minutes`: startServer's exit hook then kills the server's process group.
 */
export async function withDeadline(name, minutes, run) {
  const deadline = setTimeout(() => {
    console.error(`${name}: not done after ${minutes} minutes, stopping`)
    process.exit(1)
  }, minutes * 60_000)
  try {
    await run()
  } finally {
    clearTimeout(deadline)
  }
}

/** Distinct phones, one per request: +1 202 555 0100 … 9999 (all valid US numbers for libphonenumber). */
export const phone = (i) => `+1202555${String(i).padStart(4, '0')}`
export const wrong = (code) => String((Number(code) + 1) % 1_000_000).padStart(6, '0')

/**
 * A test project for the server to be seeded with; `settings` go through the same validation as
 * `npm run project:create`. By default the limits are raised so that no request of the bench is
 * refused by an abuse limit: each phone gets two sends and one wrong code at most.
 */
/** @param {Record<string, unknown>} [settings] */
export const benchProject = (settings = LENIENT_LIMITS) => ({
  id: `project-test-${randomUUID()}`,
  secret: `secret-test-bench-${randomUUID()}`,
  env: 'test',
  settings: ProjectSettingsSchema.parse(settings),
})

export const authorization = (project) => `Basic ${Buffer.from(`${project.id}:${project.secret}`).toString('base64')}`
export const jsonHeaders = (project) => ({ authorization: authorization(project), 'content-type': 'application/json' })

// What the bench entry reports per request (src/bench/storage-count.ts), summed over a run.
const COUNT_KINDS = [
  'd1',
  'kv_read',
  'kv_write',
  'kv_delete',
  'queue_send',
  'rows_read',
  'rows_written',
  'd1_ms',
  'statements',
  'logs',
]

/**
 * Runs one scenario: `amount` requests, the i-th from `body(i)` (or a fixed GET, unauthenticated unless
 * `project` is given), at most `maxSeconds`. POSTs carry the credentials of `project`, else of
 * `defaultProject`. Every reply should have the status `expect`, or one of `also`.
 */
export async function load(
  baseUrl,
  {
    name,
    method = 'POST',
    path,
    body,
    amount,
    expect,
    also = [],
    onBody,
    connections,
    maxSeconds,
    project,
    defaultProject,
  },
) {
  const totals = Object.fromEntries(COUNT_KINDS.map((k) => [k, 0]))
  const profiles = new Map() // X-Storage-Ops value → replies with exactly those operations
  let counted = 0
  let next = 0
  const statuses = {}
  const request = {
    method,
    path,
    headers:
      method === 'GET'
        ? project
          ? { authorization: authorization(project) }
          : {}
        : jsonHeaders(project ?? defaultProject),
    onResponse: (status, responseBody, context, responseHeaders) => {
      lastReply = performance.now()
      statuses[status] = (statuses[status] ?? 0) + 1
      // The first unexpected reply of a scenario is shown, so a failed run says why.
      if (status !== expect && !also.includes(status) && statuses[status] === 1) {
        console.error(`bench: ${name}: ${status} ${String(responseBody).slice(0, 300)}`)
      }
      const ops = headerValue(responseHeaders, 'x-storage-ops')
      if (ops) {
        counted++
        profiles.set(ops, (profiles.get(ops) ?? 0) + 1)
        for (const part of ops.split(',')) {
          const [kind, n] = part.trim().split('=')
          if (kind in totals) totals[kind] += Number(n)
        }
        const rows = /^read=(\d+), written=(\d+), ms=([\d.]+)$/.exec(headerValue(responseHeaders, 'x-d1-rows') ?? '')
        if (rows) {
          totals.rows_read += Number(rows[1])
          totals.rows_written += Number(rows[2])
          totals.d1_ms += Number(rows[3])
        }
        totals.statements += Number(headerValue(responseHeaders, 'x-d1-statements') ?? 0)
        totals.logs += Number(headerValue(responseHeaders, 'x-log-lines') ?? 0)
      }
      if (onBody && status === 200) onBody(context.index, JSON.parse(responseBody))
    },
  }
  if (body) {
    // Called once per request, just before it is sent (pipelining 1): the context names its item.
    request.setupRequest = (req, context) => {
      context.index = next++
      return { ...req, body: JSON.stringify(body(context.index)) }
    }
  }
  // Throughput is replies over the time from the first request to the last reply, measured here:
  // autocannon's own duration moves in whole seconds.
  const firstRequest = performance.now()
  let lastReply = firstRequest
  const instance = autocannon({
    url: baseUrl,
    connections: Math.min(connections, amount),
    pipelining: 1,
    amount,
    timeout: 10,
    requests: [request],
  })
  console.error(`bench: ${name} (${amount} requests)`)
  const cap = setTimeout(() => instance.stop(), maxSeconds * 1000)
  const result = await instance
  clearTimeout(cap)
  const total = result.requests.total
  return {
    name,
    connections: Math.min(connections, amount),
    requests: total,
    matched: statuses[expect] ?? 0,
    status: expect,
    statuses,
    ok:
      [expect, ...also].reduce((n, status) => n + (statuses[status] ?? 0), 0) === amount &&
      result.errors === 0 &&
      result.timeouts === 0,
    errors: result.errors,
    timeouts: result.timeouts,
    rps: total / ((lastReply - firstRequest) / 1000),
    seconds: (lastReply - firstRequest) / 1000,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ops: counted ? Object.fromEntries(COUNT_KINDS.map((k) => [k, totals[k] / counted])) : null,
    typical: typicalProfile(profiles, counted),
  }
}

/** The most common per-request operations (the warm path) and the share of replies that had them. */
function typicalProfile(profiles, counted) {
  let best = null
  for (const [value, count] of profiles) if (!best || count > best.count) best = { value, count }
  if (!best) return null
  const ops = Object.fromEntries(
    best.value
      .split(',')
      .map((part) => part.trim().split('='))
      .map(([k, n]) => [k, Number(n)]),
  )
  return { ops, share: best.count / counted }
}

function headerValue(responseHeaders, name) {
  for (const [key, value] of Object.entries(responseHeaders ?? {})) {
    if (key.toLowerCase() === name) return Array.isArray(value) ? value[0] : value
  }
  return undefined
}

/** Reads each phone's newest code from the dev outbox (`project`'s messages), waiting for the queue consumer to deliver. */
export async function codesFromOutbox(baseUrl, project, phones, sendsEach) {
  const deadline = Date.now() + 180_000
  const codes = new Array(phones.length)
  let pending = phones.map((_, i) => i)
  while (pending.length > 0) {
    if (Date.now() > deadline) throw new Error(`${pending.length} codes were not delivered within 180 s`)
    const missing = []
    for (let start = 0; start < pending.length; start += 16) {
      await Promise.all(
        pending.slice(start, start + 16).map(async (i) => {
          const url = new URL(`/dev/whatsapp/outbox?phone_number=${encodeURIComponent(phones[i])}`, baseUrl)
          // The outbox lists the messages of the test project whose credentials it is given.
          const { messages } = await (await fetch(url, { headers: jsonHeaders(project) })).json()
          if (messages.length >= sendsEach) codes[i] = messages[0].code
          else missing.push(i)
        }),
      )
    }
    pending = missing
    if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, 500))
  }
  return codes
}

/**
 * WARMUP_PHONES login_or_create one at a time, each followed by the bare route, and their deliveries;
 * then, with `bare`, one bare run at load (`amount` requests over `connections`), which nothing
 * measures: the first bare run after start-up measured up to half the rate of the ones after it.
 */
export async function warmUp(baseUrl, project, bare) {
  for (let i = 0; i < WARMUP_PHONES; i++) {
    const res = await fetch(new URL('/v1/otps/whatsapp/login_or_create', baseUrl), {
      method: 'POST',
      headers: jsonHeaders(project),
      body: JSON.stringify({ phone_number: phone(i) }),
    })
    if (res.status !== 200) throw new Error(`warm-up login_or_create answered ${res.status}: ${await res.text()}`)
    await fetch(new URL('/health', baseUrl))
  }
  await codesFromOutbox(
    baseUrl,
    project,
    Array.from({ length: WARMUP_PHONES }, (_, i) => phone(i)),
    1,
  )
  if (bare) {
    const spec = { name: 'GET /health (warm-up)', method: 'GET', path: '/health', expect: 200, ...bare }
    await load(baseUrl, /** @type {any} */ ({ ...spec, defaultProject: project }))
  }
}
