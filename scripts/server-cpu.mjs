// The CPU a local server spends, read from the operating system (Linux /proc), for `npm run bench` and
// `npm run profile`. A server started by test/node/server.mjs is one process group: scripts/dev.mjs,
// wrangler (node), the workerd runtime that runs the Worker with the local D1, KV and Queues and
// miniflare's log collector, and the workerd of wrangler's own proxy in front of it. Their user +
// system time, summed, is what the machine spent serving; no profiler is attached for it.
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

/** Clock ticks per second of /proc/<pid>/stat's times (100 on every Linux we run on). */
const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
  } catch {
    return 100
  }
})()

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
function statFields(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return text.slice(text.lastIndexOf(')') + 2).split(' ')
  } catch {
    return null // the process ended meanwhile
  }
}

function commandLine(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
  } catch {
    return []
  }
}

const pids = () => readdirSync('/proc').filter((name) => /^[0-9]+$/.test(name))

/** The process group of the server whose state directory is `persistTo` (it is on wrangler's command line). */
export function serverProcessGroup(persistTo) {
  for (const pid of pids()) {
    const args = commandLine(pid)
    const at = args.indexOf('--persist-to')
    if (at >= 0 && args[at + 1] === persistTo) {
      const fields = statFields(pid)
      if (fields) return Number(fields[2])
    }
  }
  throw new Error(`no server process found for ${persistTo}`)
}

/** The process that runs the Worker with the D1, KV and Queues simulators and the log collector. */
export const RUNTIME_ROLE = 'workerd (Worker, D1, KV, Queues, log collector)'

/** What a process of the server is, from its command line. */
function role(args) {
  const line = args.join(' ')
  if (/workerd/.test(args[0] ?? '')) {
    // The runtime of the Worker and its local services is the one wrangler starts with an inspector.
    return /--inspector-addr/.test(line) ? RUNTIME_ROLE : "workerd (wrangler's proxy)"
  }
  if (/wrangler-dist\/cli\.js/.test(line)) return 'wrangler (node)'
  if (/scripts\/dev\.mjs/.test(line)) return 'scripts/dev.mjs (node)'
  if (/\.bin\/wrangler/.test(line)) return 'wrangler launcher (node)'
  return args[0]?.split('/').at(-1) ?? 'other'
}

/**
 * CPU milliseconds each process of the group has used so far, by role: user + system time, with
 * that of its children that ended and were waited for (so a process ending between two readings
 * loses nothing).
 */
export function groupCpu(pgid) {
  /** @type {Record<string, number>} */
  const byRole = {}
  let total = 0
  for (const pid of pids()) {
    const fields = statFields(pid)
    if (!fields || Number(fields[2]) !== pgid) continue
    // utime, stime, cutime, cstime are fields 14-17 of stat, 11-14 after the name.
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0)
    const ms = (ticks * 1000) / TICKS_PER_SECOND
    const name = role(commandLine(pid))
    byRole[name] = (byRole[name] ?? 0) + ms
    total += ms
  }
  return { total, byRole }
}

/**
 * The difference of two groupCpu readings.
 * @param {{ total: number, byRole: Record<string, number> }} before
 * @param {{ total: number, byRole: Record<string, number> } | null} [after]
 */
export function cpuSince(before, after = null) {
  const now = after ?? before
  const start = after ? before : null
  const byRole = {}
  for (const [name, ms] of Object.entries(now.byRole)) byRole[name] = ms - (start?.byRole[name] ?? 0)
  return { total: now.total - (start?.total ?? 0), byRole }
}

/** The share of one CPU the server uses while nothing is asked of it, over `ms`. */
export async function idleShare(pgid, ms = 2_000) {
  const before = groupCpu(pgid)
  const started = Date.now()
  await new Promise((resolve) => setTimeout(resolve, ms))
  return (groupCpu(pgid).total - before.total) / (Date.now() - started)
}

/**
 * Resolves once the server has been idle for `quietMs` (less than `idleShare` of one CPU over that
 * time): the queue consumer has delivered every job (its batches wait at most a second), and no
 * request is being served (`idleShare`: raise it when something else keeps the server busy, such as
 * an attached profiler). Returns the group's CPU at that moment. Throws after `maxMs`.
 */
export async function untilQuiet(pgid, { quietMs = 2_000, idleShare = 0.02, maxMs = 180_000, stepMs = 250 } = {}) {
  const deadline = Date.now() + maxMs
  const window = []
  for (;;) {
    const reading = { at: Date.now(), cpu: groupCpu(pgid) }
    window.push(reading)
    while (window.length > 1 && reading.at - window[0].at > quietMs) window.shift()
    const span = reading.at - window[0].at
    if (span >= quietMs - stepMs && reading.cpu.total - window[0].cpu.total <= idleShare * span) return reading.cpu
    if (Date.now() > deadline) throw new Error(`the server was still busy after ${maxMs / 1000} s`)
    await new Promise((resolve) => setTimeout(resolve, stepMs))
  }
}
