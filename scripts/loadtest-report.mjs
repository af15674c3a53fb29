// The figures `npm run loadtest` prints (scripts/loadtest.mjs): one line per phase and check.

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0

/** Replies that were a 5xx or no reply at all (status 0: transport error or timeout), over all kinds. */
export function failedReplies(byKind) {
  let n = 0
  for (const counts of Object.values(byKind)) {
    for (const [status, count] of Object.entries(counts)) if (Number(status) >= 500 || Number(status) === 0) n += count
  }
  return n
}

/** The report: settings, the mixed load by kind and status, storage against the replies, logins, verdict. */
export function formatReport({ settings, load, drainSeconds, storage, auth, failures }) {
  const { seed, requests, concurrency, phones, cooldown } = settings
  const l = load.latencies
  const ms = (v) => `${v.toFixed(0)} ms`
  const byKind = Object.entries(load.byKind).map(([kind, counts]) => {
    const statuses = Object.entries(counts).map(([status, n]) => `${n} x ${status}`)
    return `  ${kind.padEnd(11)} ${statuses.join(', ')}`
  })
  const lines = [
    `seed ${seed}, ${requests} requests, concurrency ${concurrency}, ${phones} candidate numbers, cooldown ${cooldown} s`,
    `mixed load: ${load.sent} requests in ${load.seconds.toFixed(1)} s (${(load.sent / load.seconds).toFixed(0)} req/s), ` +
      `latency p50 ${ms(percentile(l, 50))}, p99 ${ms(percentile(l, 99))}, max ${ms(l.at(-1) ?? 0)}`,
    ...byKind,
    `5xx or failed requests: ${failedReplies(load.byKind)}`,
    `distinct numbers with a user: ${load.ledger.phones.size}; users in D1: ${storage.users}; phones in D1: ${storage.phones}`,
    `accepted sends: ${load.ledger.acceptedSends}; deliveries: ${storage.deliveries} (sent ${storage.sent}, ` +
      `superseded before sending ${storage.superseded}, other ${storage.other}); drained in ${drainSeconds.toFixed(1)} s`,
    `outbox: ${storage.outboxRows} messages for ${storage.sent} sent deliveries, none twice, none missing`,
    `authenticate: ${auth.ok} of ${storage.outbox.size} numbers logged in with their current code, ` +
      `${auth.replaysRefused} replays refused, ${auth.olderRefused} older codes refused; ` +
      `${auth.requests} requests in ${auth.seconds.toFixed(1)} s`,
  ]
  if (failures.length === 0) lines.push('RESULT: PASS')
  else lines.push(`RESULT: FAIL (${failures.length})`, ...failures.slice(0, 20).map((f) => `  - ${f}`))
  return lines.join('\n')
}
