declare namespace Cloudflare {
  interface Env {
    /** migrations/*.sql as read by readD1Migrations (vitest.config.ts). */
    TEST_MIGRATIONS: import('cloudflare:test').D1Migration[]
    /** The statements of schema.sql (vitest.config.ts). */
    TEST_SCHEMA: string[]
    /** scripts/db-baseline.sql, the baseline for databases created before migrations. */
    TEST_BASELINE: string
  }
}
