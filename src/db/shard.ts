/**
 * The one place that picks the D1 database holding a project's data: its users, phones, codes,
 * deliveries, sessions, signing keys and abuse-limit counters. Every project lives in the DB binding
 * today; a deployment that outgrows one database adds bindings and maps projects to them here
 * (docs/scaling.md). The project records themselves (authentication of every request) stay in DB.
 */
export function projectDb(env: Env, _projectId: string): D1Database {
  return env.DB
}

/**
 * `env` as the code that serves one project sees it: DB is that project's database (projectDb).
 * Request handlers get it from the project authentication middleware, the queue consumer per job.
 */
export function projectEnv(env: Env, projectId: string): Env {
  const db = projectDb(env, projectId)
  return db === env.DB ? env : { ...env, DB: db }
}
