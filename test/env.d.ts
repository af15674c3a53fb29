declare namespace Cloudflare {
  interface Env {
    /** migrations/*.sql as read by readD1Migrations (vitest.config.ts). */
    TEST_MIGRATIONS: import('cloudflare:test').D1Migration[]
    /** The statements of schema.sql (vitest.config.ts). */
    TEST_SCHEMA: string[]
    /** scripts/db-baseline.sql, the baseline for databases created before migrations. */
    TEST_BASELINE: string
    /** fast-check seed for the fuzz tests: a number, or 'random' (vitest.config.ts). */
    FUZZ_SEED: string
    /** 'deep' in `npm run test:deep`: the fuzz tests' full case counts (test/fuzz-setup.ts). */
    FUZZ_DEPTH: string
  }
}
