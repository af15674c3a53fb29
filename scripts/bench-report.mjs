// Formatting for `npm run bench` (scripts/bench.mjs): the Markdown table and the performance target checks.

const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`
const num = (n, digits = 2) => (Number.isInteger(n) ? String(n) : n.toFixed(digits))
const _pct = (part, whole) => `${((100 * part) / whole).toFixed(0)}%`
const row = (cells) => `| ${cells.join(' | ')} |`
const OPS_HEADINGS = [
  'D1 transactions',
  'D1 statements',
  'D1 rows read',
  'D1 rows written',
  'KV reads',
  'KV writes',
  'KV deletes',
  'Queue sends',
  'Log lines',
]
const OPS_KINDS = [
  'd1',
  'statements',
  'rows_read',
  'rows_written',
  'kv_read',
  'kv_write',
  'kv_delete',
  'queue_send',
  'logs',
]
// The same for the queue consumer's work, per message it received (its counts name the kinds alike).
const DELIVERY_HEADINGS = OPS_HEADINGS.filter((h) => h !== 'Queue sends')
const DELIVERY_KINDS = OPS_KINDS.filter((k) => k !== 'queue_send')

const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length

/** The history targets: p50 at the largest N within 1.25x of the empty run's, rows read not growing with N. */
function historyChecks(history) {
  if (history.length < 2) return []
  const empty = history[0]
  const full = history.at(-1)
  const reads = history.map((r) => r.ops?.rows_read ?? Number.NaN)
  const bound = Math.max(...reads)
  return [
    `- ${full.p50 <= 1.25 * empty.p50 ? 'met' : 'MISSED'}: p50 with ${full.events.toLocaleString('en-US')} events ` +
      `in the window <= 1.25x p50 with none: ${num(full.p50, 1)} ms vs ${num(empty.p50, 1)} ms ` +
      `(${(full.p50 / empty.p50).toFixed(2)}x)`,
    // A full hour of history fills the 60 earlier minute buckets of the two counters the seeding uses
    // (country, new users): at most 2 x 60 more rows than an empty one, whatever N is.
    `- ${bound - reads[0] <= 2 * 60 ? 'met' : 'MISSED'}: D1 rows read per login_or_create bounded whatever N ` +
      `(at most 120 above the empty run): ${reads.map((n) => num(n, 1)).join(' / ')} at N = ` +
      `${history.map((r) => r.events.toLocaleString('en-US')).join(' / ')}`,
  ]
}

/**
 * The run as Markdown: machine, the bare route (all its runs), one row per scenario, bundle size.
 * @param {{ machine: any, bareRuns: any[], rows: any[], bundle: any, history?: any[], capacity?: any[] }} run
 */
export function formatReport({ machine, bareRuns, rows, bundle, history = [], capacity = [] }) {
  const bare = {
    name: `GET /health (bare, mean of ${bareRuns.length} runs)`,
    matched: bareRuns.reduce((n, r) => n + r.matched, 0),
    requests: bareRuns.reduce((n, r) => n + r.requests, 0),
    status: 200,
    rps: mean(bareRuns.map((r) => r.rps)),
    p50: mean(bareRuns.map((r) => r.p50)),
    p99: mean(bareRuns.map((r) => r.p99)),
    ops: bareRuns[0]?.ops ?? null,
    cpuMs: bareRuns.every((r) => r.cpuMs !== undefined) ? mean(bareRuns.map((r) => r.cpuMs)) : undefined,
    loadAverage: bareRuns.every((r) => r.loadAverage !== undefined)
      ? mean(bareRuns.map((r) => r.loadAverage))
      : undefined,
  }
  bare.bare = bare.rps
  const lines = [
    `Run ${machine.date} on ${machine.nproc} CPUs (${machine.cpu}), Node ${machine.node}, wrangler ${machine.wrangler}` +
      ` (local workerd, D1, KV and Queues); ${machine.requests} requests per scenario (${machine.bareRequests} for the` +
      ` bare route) over ${machine.connections} connections, each request for a distinct phone; req/s = replies ÷` +
      ' time from the first request to the last reply.',
    '',
    row([
      'Scenario',
      'Replies',
      'req/s',
      'p50 ms',
      'p99 ms',
      'req/s vs bare',
      'Server CPU ms / request',
      'Load avg',
      ...OPS_HEADINGS,
    ]),
    row(['---', '---', ...Array(6 + OPS_HEADINGS.length).fill('---:')]),
  ]
  for (const r of [bare, ...rows, ...history]) {
    const ops = r.ops ? OPS_KINDS.map((k) => num(r.ops[k], 1)) : Array(OPS_KINDS.length).fill('?')
    const ratio = (r.rps / r.bare).toFixed(2)
    const replies = `${r.matched}/${r.requests} × ${r.status}`
    const cpu = r.cpuMs === undefined ? '?' : num(r.cpuMs, 2)
    const load = r.loadAverage === undefined ? '?' : num(r.loadAverage, 1)
    lines.push(row([r.name, replies, Math.round(r.rps), num(r.p50, 1), num(r.p99, 1), ratio, cpu, load, ...ops]))
  }
  const delivering = [...rows, ...history].filter((r) => r.delivery?.messages > 0)
  if (delivering.length > 0) {
    lines.push(
      '',
      'The delivery job, counted apart: what the queue consumer did per message it received during the scenario ' +
        "(its CPU is in the scenario's server CPU above, which runs until the server is idle again).",
      '',
      row(['Scenario', 'Messages', 'Batches', ...DELIVERY_HEADINGS.map((h) => `${h} / message`)]),
      row(['---', ...Array(2 + DELIVERY_HEADINGS.length).fill('---:')]),
      ...delivering.map((r) =>
        row([
          r.name,
          r.delivery.messages,
          r.delivery.batches,
          ...DELIVERY_KINDS.map((k) => num(r.delivery[k] / r.delivery.messages, 2)),
        ]),
      ),
    )
  }
  const fresh = rows.find((r) => r.name === 'login_or_create, new phones')
  const auth = rows.find((r) => r.name === 'authenticate, right code')
  if (fresh?.cpuMs !== undefined && auth?.cpuMs !== undefined) {
    lines.push(
      '',
      `Server CPU per full login (login_or_create for a new phone with its delivery, then authenticate with the ` +
        `right code): ${num(fresh.cpuMs + auth.cpuMs, 2)} ms (${num(fresh.cpuMs, 2)} + ${num(auth.cpuMs, 2)}); the ` +
        `bare route ${num(bare.cpuMs, 2)} ms a request.`,
    )
  }
  if (history.length > 0) {
    const empty = history[0]
    lines.push(
      '',
      `History: login_or_create (${empty.requests} new numbers per run) with N sends already counted in the last hour.`,
      '',
      row(['N events in the window', 'req/s', 'p50 ms', 'p50 vs empty', 'req/s vs empty', 'D1 rows read / request']),
      row(['---:', '---:', '---:', '---:', '---:', '---:']),
      ...history.map((r) =>
        row([
          r.events.toLocaleString('en-US'),
          Math.round(r.rps),
          num(r.p50, 1),
          (r.p50 / empty.p50).toFixed(2),
          (r.rps / empty.rps).toFixed(2),
          r.ops ? num(r.ops.rows_read, 1) : '?',
        ]),
      ),
    )
  }
  if (capacity.length > 0) {
    lines.push(
      '',
      'Capacity of this one local D1 database: requests one at a time, D1 time per request (sending each batch ' +
        'to its result); D1 runs one query at a time, so 1000 / that time is what the database alone would sustain.',
      '',
      row([
        'Request',
        'Replies',
        'req/s (1 connection)',
        'p50 ms',
        'D1 ms / request',
        'D1-bound requests/s',
        'D1 rows read',
        'D1 rows written',
      ]),
      row(['---', '---', '---:', '---:', '---:', '---:', '---:', '---:']),
      ...capacity.map((r) =>
        row([
          r.name,
          `${r.matched}/${r.requests} × ${r.status}`,
          Math.round(r.rps),
          num(r.p50, 1),
          r.ops ? num(r.ops.d1_ms, 2) : '?',
          r.ops && r.ops.d1_ms > 0 ? Math.round(1000 / r.ops.d1_ms) : '?',
          r.ops ? num(r.ops.rows_read, 1) : '?',
          r.ops ? num(r.ops.rows_written, 1) : '?',
        ]),
      ),
    )
  }
  lines.push(
    '',
    '"req/s vs bare" divides by the mean of the GET /health runs just before and just after the scenario ' +
      `(bare runs in order: ${bareRuns.map((r) => Math.round(r.rps)).join(', ')} req/s). Storage operations are ` +
      'per request, counted by the Worker (BENCH_COUNT_STORAGE=1); a D1 transaction is one round trip (a batch, ' +
      'or one statement run alone). Server CPU is the user + system time of every process of the server ' +
      '(wrangler, its proxy and the workerd that runs the Worker with the local D1, KV, Queues and log ' +
      'collector) from /proc, from the first request until the server is idle again, per request; load avg is ' +
      "the machine's 1-minute load average as the run started.",
    '',
    `Bundle (wrangler deploy --dry-run): ${kib(bundle.raw_bytes)} raw, ${kib(bundle.gzip_bytes)} gzipped ` +
      `(${bundle.files.join(', ')}).`,
  )
  return lines.join('\n')
}

/**
 * One line per performance target (docs/benchmarks.md), judged on each scenario's typical request (the most common
 * operation counts: the warm path), with how many requests were typical and the mean over all.
 * @param {{ fresh: any, existing: any, rightCode: any, wrongCode: any, bundle: any, bundleTarget: number,
 *   history?: any[] }} runs
 */
export function targetChecks({ fresh, existing, rightCode, wrongCode, bundle, bundleTarget, history = [] }) {
  const sendOps = (r) => r.typical?.ops.d1 === 1 && r.typical.ops.kv_write === 1 && r.typical.ops.queue_send === 1
  const describe = (r) => {
    if (!r.typical || !r.ops) return 'no counts'
    const t = r.typical.ops
    return (
      `${(100 * r.typical.share).toFixed(1)}% of requests made D1 ${t.d1}, KV reads ${t.kv_read}, writes ${t.kv_write}, ` +
      `deletes ${t.kv_delete}, queue ${t.queue_send} (mean D1 ${num(r.ops.d1)}, KV reads ${num(r.ops.kv_read)})`
    )
  }
  const check = (ok, text) => `- ${ok ? 'met' : 'MISSED'}: ${text}`
  const auth = rightCode.typical?.ops
  return [
    '',
    'Targets:',
    check(sendOps(fresh), `login_or_create (new phone) 1 D1 round trip, 1 KV write, 1 queue send: ${describe(fresh)}`),
    check(sendOps(existing), `login_or_create (existing phone) likewise: ${describe(existing)}`),
    check(
      Boolean(auth && auth.kv_read === 1 && auth.d1 <= 1 && auth.kv_delete === 0),
      `authenticate (right code) 1 KV read, <= 1 D1 round trip, no KV delete: ${describe(rightCode)}`,
    ),
    check(
      fresh.rps / fresh.bare >= 0.35 && existing.rps / existing.bare >= 0.35,
      `login_or_create throughput >= 0.35x the bare route's: new phones ${(fresh.rps / fresh.bare).toFixed(2)}x, ` +
        `existing ${(existing.rps / existing.bare).toFixed(2)}x`,
    ),
    check(
      rightCode.rps / rightCode.bare >= 0.5,
      `authenticate throughput >= 0.5x the bare route's: right code ${(rightCode.rps / rightCode.bare).toFixed(2)}x` +
        (wrongCode ? `, wrong code ${(wrongCode.rps / wrongCode.bare).toFixed(2)}x` : ''),
    ),
    ...historyChecks(history),
    check(bundle.gzip_bytes <= bundleTarget, `bundle <= ${kib(bundleTarget)} gzipped: ${kib(bundle.gzip_bytes)}`),
  ].join('\n')
}

/** The search target: p50 of the twenty-filter search on the seeded project. */
export const SEARCH_TARGET_P50_MS = 250

/** `matched/requests × status`, then the other statuses and the requests that timed out. */
function replies(r) {
  const others = Object.entries(r.statuses ?? {})
    .filter(([status]) => Number(status) !== r.status)
    .map(([status, n]) => `, ${n} × ${status}`)
  return `${r.matched}/${r.requests} × ${r.status}${others.join('')}${r.timeouts ? `, ${r.timeouts} timed out after 10 s` : ''}`
}

/** The search step as Markdown: how it ran, one row per run, another project's read, the target. */
export function formatSearchReport({ users, seedSeconds, loadAverage, runs, target, otherProject }, machine) {
  const lines = [
    `Search, run ${machine.date} on ${machine.nproc} CPUs (${machine.cpu}), Node ${machine.node}, wrangler ` +
      `${machine.wrangler}: a second project (and a third, with the default search budget) holding ` +
      `${users.toLocaleString('en-US')} users each, each user with one number, ` +
      `every other one verified (seeded by SQL in ${num(seedSeconds, 1)} s a project); each run is the same search repeated; ` +
      `load average ${loadAverage.toFixed(1)} when the searches started.`,
    '',
    row(['Search', 'Replies', 'Connections', 'p50 ms', 'p99 ms', 'D1 ms / request', 'D1 rows read / request']),
    row(['---', '---', '---:', '---:', '---:', '---:', '---:']),
    ...runs.map((r) =>
      row([
        r.name,
        replies(r),
        r.connections,
        num(r.p50, 1),
        num(r.p99, 1),
        r.ops ? num(r.ops.d1_ms, 1) : '?',
        r.ops ? num(r.ops.rows_read, 1) : '?',
      ]),
    ),
    '',
    row(['Another project', 'Requests', 'p50 ms', 'p99 ms']),
    row(['---', '---:', '---:', '---:']),
    ...otherProject.map((o) => row([o.name, o.samples, num(o.p50, 1), num(o.p99, 1)])),
    '',
    `- ${target.p50 <= SEARCH_TARGET_P50_MS ? 'met' : 'MISSED'}: p50 of "${target.name}" <= ` +
      `${SEARCH_TARGET_P50_MS} ms: ${num(target.p50, 1)} ms`,
  ]
  return lines.join('\n')
}

/**
 * The shards step (scripts/bench.mjs shardRuns) as Markdown: per run and project, its shard, replies,
 * req/s, p50, the D1 time per request and what 1000 / that time makes; then per run the D1-bound
 * requests/s of the databases used, summed over distinct shards.
 */
export function formatShardReport({ loadAverage, runs }, machine) {
  const bound = (r) => (r.ops && r.ops.d1_ms > 0 ? 1000 / r.ops.d1_ms : Number.NaN)
  const lines = [
    `Shards: ${machine.date}, load average ${loadAverage.toFixed(2)} as the step started; login_or_create for new ` +
      'numbers, one request at a time per project (1 connection each); D1 ms = time from sending the batch to its ' +
      'result, as the Worker measures it.',
    '',
    row(['Run', 'Project (shard)', 'Replies', 'req/s', 'p50 ms', 'D1 ms / request', 'D1-bound requests/s']),
    row(['---', '---', '---', '---:', '---:', '---:', '---:']),
  ]
  for (const run of runs) {
    run.sides.forEach((r, i) => {
      lines.push(
        row([
          i === 0 ? run.name : '',
          `${i + 1} (shard ${r.shard})`,
          `${r.matched}/${r.requests} × ${r.status}`,
          Math.round(r.rps),
          num(r.p50, 1),
          r.ops ? num(r.ops.d1_ms, 2) : '?',
          Number.isNaN(bound(r)) ? '?' : Math.round(bound(r)),
        ]),
      )
    })
  }
  lines.push(
    '',
    row(['Run', 'req/s, all projects', 'D1-bound requests/s of the shards used']),
    row(['---', '---:', '---']),
  )
  for (const run of runs) {
    // A database runs one query at a time, whichever project sends it: a shard's D1-bound rate is 1000
    // / the mean D1 time of all the requests it served, shared by the projects on it; shards add up.
    const byShard = new Map()
    for (const r of run.sides) {
      const [ms, n] = byShard.get(r.shard) ?? [0, 0]
      byShard.set(r.shard, [ms + (r.ops?.d1_ms ?? Number.NaN) * r.requests, n + r.requests])
    }
    const perShard = [...byShard].map(([shard, [ms, n]]) => [shard, 1000 / (ms / n)])
    const total = perShard.reduce((n, [, rate]) => n + rate, 0)
    const parts = perShard.map(([shard, rate]) => `shard ${shard}: ${Math.round(rate)}`).join(' + ')
    lines.push(
      row([
        run.name,
        Math.round(run.sides.reduce((n, r) => n + r.rps, 0)),
        perShard.length > 1 ? `${parts} = ${Math.round(total)}` : parts,
      ]),
    )
  }
  // Each shard measured alone: the D1-bound rate of every shard, and their sum, the deployment's.
  const alone = runs.filter((run) => run.sides.length === 1).map((run) => run.sides[0])
  if (alone.length > 1) {
    const rates = alone.map((r) => [r.shard, bound(r)])
    lines.push(
      '',
      `D1-bound requests/s of each shard measured alone: ${rates.map(([shard, rate]) => `shard ${shard} ${Math.round(rate)}`).join(', ')}; ` +
        `both shards together ${Math.round(rates.reduce((n, [, rate]) => n + rate, 0))}, against ${Math.round(rates[0][1])} for one.`,
    )
  }
  return lines.join('\n')
}
