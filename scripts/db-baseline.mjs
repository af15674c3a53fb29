// Baseline for a D1 database created before the service used migrations (scripts/db-baseline.sql
// says what it records and when it records nothing), then lists what the database records.
//
//   npm run db:baseline                                   # local state
//   npm run db:baseline -- --remote [--wrangler-env production]
import { parseArgs } from 'node:util'
import { d1Execute } from './d1.mjs'

const { values } = parseArgs({
  options: { remote: { type: 'boolean', default: false }, 'wrangler-env': { type: 'string' } },
})
const target = { remote: values.remote, configEnv: values['wrangler-env'] }

d1Execute({ ...target, file: 'scripts/db-baseline.sql' })
const [result] = d1Execute({ ...target, json: true, sql: 'SELECT name, applied_at FROM d1_migrations ORDER BY id' })
console.log(JSON.stringify({ d1_migrations: result?.results ?? [] }, null, 2))
console.log(`Now apply the rest: npm run db:migrate${values.remote ? ' -- --remote' : ''}`)
