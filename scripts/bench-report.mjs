// Formatting for `npm run bench` (scripts/bench.mjs): the Markdown table and the issue-6 target checks.

const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`
const num = (n, digits = 2) => (Number.isInteger(n) ? String(n) : n.toFixed(digits))
const pct = (part, whole) => `${((100 * part) / whole).toFixed(0)}%`
const row = (cells) => `| ${cells.join(' | ')} |`
const OPS_HEADINGS = ['D1 round trips', 'KV reads', 'KV writes', 'KV deletes', 'Queue sends']

const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length

/** The run as Markdown: machine, the bare route (all its runs), one row per scenario, bundle size. */
export function formatReport({ machine, bareRuns, rows, bundle }) {
  const bare = {
    name: `GET /health (bare, mean of ${bareRuns.length} runs)`,
    matched: bareRuns.reduce((n, r) => n + r.matched, 0),
    requests: bareRuns.reduce((n, r) => n + r.requests, 0),
    status: 200,
    rps: mean(bareRuns.map((r) => r.rps)),
    p50: mean(bareRuns.map((r) => r.p50)),
    p99: mean(bareRuns.map((r) => r.p99)),
    ops: bareRuns[0]?.ops ?? null,
  }
  bare.bare = bare.rps
  const lines = [
    `Run ${machine.date} on ${machine.nproc} CPUs (${machine.cpu}), Node ${machine.node}, wrangler ${machine.wrangler}` +
      ` (local workerd, D1, KV and Queues); ${machine.requests} requests per scenario over ${machine.connections}` +
      ' connections, each request for a distinct phone.',
    '',
    row(['Scenario', 'Replies', 'req/s', 'p50 ms', 'p99 ms', 'req/s vs bare', ...OPS_HEADINGS]),
    row(['---', '---', ...Array(4 + OPS_HEADINGS.length).fill('---:')]),
  ]
  for (const r of [bare, ...rows]) {
    const ops = r.ops
      ? [r.ops.d1, r.ops.kv_read, r.ops.kv_write, r.ops.kv_delete, r.ops.queue_send].map((n) => num(n))
      : Array(5).fill('?')
    const ratio = (r.rps / r.bare).toFixed(2)
    const replies = `${r.matched}/${r.requests} × ${r.status}`
    lines.push(row([r.name, replies, Math.round(r.rps), num(r.p50, 1), num(r.p99, 1), ratio, ...ops]))
  }
  lines.push(
    '',
    '"req/s vs bare" divides by the mean of the GET /health runs just before and just after the scenario ' +
      `(bare runs in order: ${bareRuns.map((r) => Math.round(r.rps)).join(', ')} req/s). Storage operations are ` +
      'per request, counted by the Worker (BENCH_COUNT_STORAGE=1).',
    '',
    `Bundle (wrangler deploy --dry-run): ${kib(bundle.raw_bytes)} raw, ${kib(bundle.gzip_bytes)} gzipped ` +
      `(${bundle.files.join(', ')}).`,
  )
  return lines.join('\n')
}

/**
 * One line per target of issue 6, judged on each scenario's typical request (the most common
 * operation counts: the warm path), with how many requests were typical and the mean over all.
 */
export function targetChecks({ fresh, existing, rightCode, bundle, bundleTarget }) {
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
      Boolean(auth && auth.kv_read === 1 && auth.d1 <= 1 && auth.kv_delete === 1),
      `authenticate (right code) 1 KV read, <= 1 D1 round trip, 1 KV delete: ${describe(rightCode)}`,
    ),
    check(
      fresh.rps / fresh.bare >= 0.5 && existing.rps / existing.bare >= 0.5,
      `login_or_create throughput >= 50% of the bare route's: new phones ${pct(fresh.rps, fresh.bare)}, ` +
        `existing ${pct(existing.rps, existing.bare)}`,
    ),
    check(bundle.gzip_bytes <= bundleTarget, `bundle <= ${kib(bundleTarget)} gzipped: ${kib(bundle.gzip_bytes)}`),
  ].join('\n')
}
