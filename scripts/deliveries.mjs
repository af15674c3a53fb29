// npm run deliveries [-- --failed] [--limit 50] [--days 7] [--project PROJECT_ID] [--remote [--wrangler-env E]]
//                    [--persist-to DIR] [--json]
//
// Recent deliveries, newest first (with --failed only the failed ones): when, the number masked
// (calling code and last two digits), country, status, Meta's error code, our label for it and the
// number of send attempts. Local D1 state by default; --remote reads the deployed databases. Every
// shard is read (scripts/ops.mjs).
import { parseArgs } from 'node:util'
import { COMMON_OPTIONS, commonArgs, deliveriesTable, deliveryRows, loadDeliveries } from './ops.mjs'

let args
let limit
let failedOnly
try {
  const { values } = parseArgs({
    options: {
      ...COMMON_OPTIONS,
      failed: { type: 'boolean', default: false },
      limit: { type: 'string', default: '50' },
    },
  })
  args = commonArgs(values)
  limit = Number(values.limit)
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    throw new Error('--limit must be an integer from 1 to 1000')
  failedOnly = values.failed
} catch (err) {
  console.error(`error: ${err.message}`)
  process.exit(2)
}
let rows
try {
  rows = deliveryRows(loadDeliveries({ ...args, failedOnly, limit }))
} catch (err) {
  console.error(`error: ${err.message}`)
  process.exit(1)
}
if (args.json) console.log(JSON.stringify({ deliveries: rows }, null, 2))
else if (rows.length === 0) console.log(`No ${failedOnly ? 'failed ' : ''}deliveries in the last ${args.days} days.`)
else console.log(deliveriesTable(rows))
