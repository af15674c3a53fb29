import { findProject, isPaused, movesUnderWay } from '../db/projects'
import { projectEnv, shardDb, shardNumbers } from '../db/shard'
import { storedNumberCountry } from '../limits'
import { logEvent, recordEvent } from '../log'
import { withMetrics } from '../metrics'
import { pauseRetrySeconds } from '../shards/pause'
import { twilioErrorRule } from '../sms/twilio'
import { metaErrorRule } from '../whatsapp/meta'
import { type AppliedStatus, applyStatuses, type StatusEvent } from './deliveries'
import { deferFallback, jobFromFallbackCode, startFallback } from './fallback'
import type { Channel } from './job'
import type { ErrorRule } from './provider'

/** The provider's rule for an error code of a status on `channel`. */
export function statusErrorRule(channel: Channel, code: number): ErrorRule | undefined {
  return channel === 'whatsapp' ? metaErrorRule(code) : twilioErrorRule(code)
}

/** How a failure reported after the provider accepted the message is labelled (deliveries.error_detail). */
const FAILED_DETAIL: Record<Channel, string> = { whatsapp: 'meta_status_failed', sms: 'twilio_status_failed' }

/**
 * The one path of every provider status: Meta's webhook, Twilio's status callback, and a status the
 * console provider reports at once. Moves the deliveries forward (src/delivery/deliveries.ts), logs
 * each status that moved one (with its metric), and when Meta reports a WhatsApp message failed
 * because its recipient cannot receive WhatsApp, starts the SMS fallback of a delivery that kept its
 * sealed code for it. Returns the statuses that moved a delivery. `env`: the Worker's own bindings
 * (the directory and every shard).
 *
 * Which shard: the one the send recorded in the status's callback data (event.shard); every shard
 * when it recorded none (a message sent before shards), when a routed status moved nothing there (its
 * project moved to another shard since), and while any project is moving between shards, whose rows
 * are then in two shards that must both see the status. A delivery is identified by its provider
 * message id, unique across shards, so an update matches in one shard, or in both copies of a moving
 * project. Only the copy in the shard the project's directory record names acts on a status (log,
 * metric, fallback); the other copy is kept in step.
 */
export async function applyProviderStatuses(
  env: Env,
  channel: Channel,
  events: readonly StatusEvent[],
  at: number,
): Promise<AppliedStatus[]> {
  const acted: AppliedStatus[] = []
  for (const { shard, status } of await applyOnShards(env, channel, events, at)) {
    const project = await findProject(env.DB, status.projectId, at)
    if (project && project.shard !== shard) continue
    acted.push(status)
    await withMetrics(env, { project: status.projectId, channel }, async () => {
      logStatus(channel, status, at)
      const rule = status.errorCode === null ? undefined : statusErrorRule(channel, status.errorCode)
      if (project && status.status === 'failed' && rule?.fallback && status.fallbackCode && status.phoneNumber) {
        const job = jobFromFallbackCode(status.fallbackCode, {
          id: status.deliveryId,
          project_id: status.projectId,
          phone_id: status.phoneId,
          phone_number: status.phoneNumber,
          expires_at: status.expiresAt,
        })
        if (!job) return
        const source = { job, errorCode: status.errorCode }
        // A project paused by its move may not write now: the fallback waits in the queue until the
        // pause is over, then the consumer starts it.
        if (isPaused(project, at)) await deferFallback(env, source, pauseRetrySeconds(project, at))
        else await startFallback(projectEnv(env, project), project, source, at)
      }
    })
  }
  return acted
}

/** Applies the events on the shards they belong to (see applyProviderStatuses); each moved row with its shard. */
async function applyOnShards(
  env: Env,
  channel: Channel,
  events: readonly StatusEvent[],
  at: number,
): Promise<{ shard: number; status: AppliedStatus }[]> {
  if (events.length === 0) return []
  const shards = shardNumbers(env)
  const everywhere = shards.length > 1 && (await movesUnderWay(env.DB, at))
  const routed = new Map<number, StatusEvent[]>()
  // Events for every shard, but the one (`except`) that already had them.
  const spread: { event: StatusEvent; except?: number }[] = []
  for (const event of events) {
    if (!everywhere && event.shard !== undefined && shards.includes(event.shard)) {
      routed.set(event.shard, [...(routed.get(event.shard) ?? []), event])
    } else {
      spread.push({ event })
    }
  }
  const apply = async (shard: number, list: readonly StatusEvent[]) =>
    list.length === 0
      ? []
      : (await applyStatuses(shardDb(env, shard), channel, list, at, FAILED_DETAIL[channel])).map((status) => ({
          shard,
          status,
        }))
  const results = (await Promise.all([...routed].map(([shard, list]) => apply(shard, list)))).flat()
  for (const [shard, list] of routed) {
    const moved = new Set(results.filter((r) => r.shard === shard).map((r) => r.status.messageId))
    for (const event of list) if (!moved.has(event.messageId)) spread.push({ event, except: shard })
  }
  const elsewhere = await Promise.all(
    shards.map((shard) =>
      apply(
        shard,
        spread.filter((s) => s.except !== shard).map((s) => s.event),
      ),
    ),
  )
  return [...results, ...elsewhere.flat()]
}

/**
 * One line (and metric) per status that moved a delivery: delivered and read with their latency
 * since the code was issued, failed with the provider's code. A failure an operator must fix
 * (payment, account, template, sender; or a code missing from the table) is an alert: such failures
 * often arrive only here, after the provider accepted the message.
 */
function logStatus(channel: Channel, status: AppliedStatus, at: number): void {
  const fields = {
    delivery_id: status.deliveryId,
    project_id: status.projectId,
    country: storedNumberCountry(status.phoneNumber),
    status: status.status,
    attempts: status.attempts,
    latency_ms: Math.max(0, at - status.createdAt),
  }
  if (status.status !== 'failed') {
    recordEvent(`${channel}.status`, fields)
    return
  }
  const rule = status.errorCode === null ? undefined : statusErrorRule(channel, status.errorCode)
  const alert = rule ? (rule.alert ?? false) : true
  logEvent(alert ? 'error' : 'warn', `${channel}.status`, {
    ...fields,
    error_code: status.errorCode,
    detail: rule?.label ?? `${channel === 'whatsapp' ? 'meta' : 'twilio'}_error`,
    alert,
  })
}
