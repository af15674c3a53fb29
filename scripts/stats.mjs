// npm run stats [-- --days 7] [--project PROJECT_ID] [--remote] [--persist-to DIR] [--json]
//
// Per destination country over the last N days (default 7), from the service's own tables: codes
// issued, accepted by WhatsApp, delivered, read, failed (by Meta error code or our label), expired
// unsent, authenticated, conversion (authenticated / codes) and the median time from issue to login.
// Local D1 state by default (the one `npm run dev` uses); --remote reads the deployed database.
import { parseArgs } from 'node:util'
import { COMMON_OPTIONS, commonArgs, computeStats, loadDeliveries, statsTable } from './ops.mjs'

let args
try {
  args = commonArgs(parseArgs({ options: COMMON_OPTIONS }).values)
} catch (err) {
  console.error(`error: ${err.message}`)
  process.exit(2)
}
let stats
try {
  stats = computeStats(loadDeliveries(args))
} catch (err) {
  console.error(`error: ${err.message}`)
  process.exit(1)
}
if (args.json) {
  console.log(JSON.stringify({ days: args.days, countries: stats }, null, 2))
} else {
  const scope = `${args.remote ? 'deployed' : 'local'} database${args.project ? `, ${args.project}` : ''}`
  console.log(`Last ${args.days} day${args.days === 1 ? '' : 's'} (${scope}), per destination country\n`)
  console.log(stats.length === 0 ? 'No codes were issued in this period.' : statsTable(stats))
}
