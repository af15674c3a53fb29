import { isPaused, type Project } from '../db/projects'
import { StytchError } from '../errors'

/**
 * A move between shards (src/shards/move.ts) pauses its project for a few seconds: from the moment
 * its directory record names (announced a project-cache lifetime ahead, so every isolate has read
 * it by then) until the flip to the new shard. Meanwhile nothing may write the project's rows, so
 * its API requests are answered 503 with Retry-After, and its queued deliveries wait in the queue.
 */

/**
 * How long after the pause starts the move begins its final copy: a request or delivery attempt
 * that read the project's record just before the pause finishes its writes within this time (a
 * provider call gives up after 10 seconds; D1 writes take milliseconds).
 */
export const MOVE_PAUSE_GRACE_MS = 15_000
/** Retry-After once the final copy is running: the flip follows it within seconds. */
const RETRY_AFTER_COPY_SECONDS = 2

/** Seconds until the project's pause is expected to be over (at least 1). */
export function pauseRetrySeconds(project: Pick<Project, 'move'>, at: number): number {
  const copyAt = (project.move?.pauseAt ?? at) + MOVE_PAUSE_GRACE_MS
  return Math.max(0, Math.ceil((copyAt - at) / 1000)) + RETRY_AFTER_COPY_SECONDS
}

/** Refuses a request of a project its move pauses: 503 service_unavailable with Retry-After. */
export function assertNotPaused(project: Project, at: number): void {
  if (!isPaused(project, at)) return
  throw new StytchError('service_unavailable', {
    message: 'This project is being moved to another database; retry in a few seconds.',
    headers: { 'Retry-After': String(pauseRetrySeconds(project, at)) },
  })
}
