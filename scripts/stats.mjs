// npm run stats [-- --days 7] [--project PROJECT_ID] [--remote [--wrangler-env E]] [--persist-to DIR] [--json]
//
// Per destination country over the last N days (default 7), from the service's own tables: codes
// issued, accepted by the provider, delivered, read, failed (by the provider's error code or our
// label), expired unsent, sent on an SMS route, fallen back from WhatsApp to SMS, authenticated,
// conversion (authenticated / codes) and the median time from issue to login; then the SMS pumping
// breaker's recent trips. Local D1 state by default (the one `npm run dev` uses); --remote reads the
// deployed databases. Every shard is read (scripts/ops.mjs).
import { parseArgs } from 'node:util'
import { breakerLines, COMMON_OPTIONS, commonArgs, computeStats, loadStatsInputs, statsTable } from './ops.mjs'

let args
try {
  args = commonArgs(parseArgs({ options: COMMON_OPTIONS }).values)
} catch (err) {
  console.error(`error: ${err.message}`)
  process.exit(2)
}
let stats
let trips
try {
  const inputs = loadStatsInputs(args)
  stats = computeStats(inputs.deliveries)
  trips = inputs.trips
} catch (err) {
  console.error(`error: ${err.message}`)
  process.exit(1)
}
if (args.json) {
  console.log(JSON.stringify({ days: args.days, countries: stats, sms_breaker: trips }, null, 2))
} else {
  const scope = `${args.remote ? 'deployed' : 'local'} databases${args.project ? `, ${args.project}` : ''}`
  console.log(`Last ${args.days} day${args.days === 1 ? '' : 's'} (${scope}), per destination country\n`)
  console.log(stats.length === 0 ? 'No codes were issued in this period.' : statsTable(stats))
  console.log(`\nSMS pumping breaker: ${trips.length === 0 ? 'no recent trips' : 'recent trips'}`)
  for (const line of breakerLines(trips)) console.log(`  ${line}`)
}
