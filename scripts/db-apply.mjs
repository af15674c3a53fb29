// Applies schema.sql (idempotent) to the local database, or to the deployed one with --remote.
import { d1Execute } from './d1.mjs'

d1Execute({ file: 'schema.sql', remote: process.argv.includes('--remote') })
console.log(`schema.sql applied to the ${process.argv.includes('--remote') ? 'remote' : 'local'} D1 database`)
