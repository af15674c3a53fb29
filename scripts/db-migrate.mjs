// `npm run db:migrate`: applies the migrations in migrations/ to every D1 shard of a wrangler
// environment (DB, DB_1, …; docs/scaling.md), shard 0 first. Local state by default.
//
//   npm run db:migrate                                  # local state (npm run dev does this too)
//   npm run db:migrate -- --remote --env production     # the deployed databases of [env.production]
//   npm run db:migrate -- --persist-to DIR              # local state kept in DIR
//
// Every shard gets the same migrations, so the Worker and `npm run project:move` find the same tables
// everywhere; a release migrates all of them before it deploys (README, "Releases and upgrades").
import { parseArgs } from 'node:util'
import { d1MigrationsApply } from './d1.mjs'

const { values } = parseArgs({
  options: {
    remote: { type: 'boolean', default: false },
    env: { type: 'string' },
    'persist-to': { type: 'string' },
  },
})

try {
  for (const { binding, output } of d1MigrationsApply({
    remote: values.remote,
    configEnv: values.env,
    persistTo: values['persist-to'],
  })) {
    console.log(`── ${binding}`)
    console.log(output.trim())
  }
} catch (err) {
  // wrangler has printed its own error above.
  console.error(`error: ${String(err.message).split('\n')[0]}`)
  process.exit(1)
}
