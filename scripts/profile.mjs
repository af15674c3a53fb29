// `npm run profile`: where the server's CPU goes, per isolate. Starts the service as `npm run bench`
// does (scripts/dev.mjs through test/node/server.mjs, the bench's entry point and project, a fresh
// state directory) but without the bench's storage accounting, so the Worker runs its production
// code, and loads it with the bare GET /health, login_or_create for new numbers (with the queue
// consumer delivering their codes) and authenticate with the right codes.
//
// 1. Server CPU per request from the operating system, with no profiler attached: the user + system
//    time of every process of the server (/proc; scripts/server-cpu.mjs) from the first request
//    until the server is idle again, by process.
// 2. The same three loads again on new numbers with a V8 CPU profile of every isolate of the
//    workerd runtime: our Worker through wrangler's inspector proxy (which holds the runtime's one
//    connection to it), and every other isolate (the local D1, KV and Queues simulators, miniflare's
//    entry and its log collector, …) through the runtime's own inspector. Writes one .cpuprofile
//    per isolate and load (open them in Chrome DevTools' Performance panel), and prints each
//    isolate's share of the samples and our Worker's top functions (mapped to src/ through the
//    bundle's source map).
// 3. The floor: the same three loads, no profiler, against src/bench/floor.ts, a Worker with our
//    bindings that makes only the storage round trips the stack requires (one D1 batch, one KV write
//    and one queue send per login_or_create, with its consumer's two D1 batches per queue batch; one
//    KV read and one D1 batch per authenticate) and does nothing else. Our cost above the floor is
//    what our own code and SQL can still cut; the floor's ratios to bare are the most any Worker
//    making those round trips reaches on this machine.
//
// With `--floor-only`, steps 1 and 2 run against the floor itself and step 3 is left out: its
// isolates profiled like ours, to see where our cost above it goes.
//
//   npm run profile -- [--requests 500] [--connections 10] [--interval 500] [--out profiles] [--floor-only]
import { mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs'
import { SourceMap } from 'node:module'
import { availableParallelism, cpus, loadavg } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { startServer } from '../test/node/server.mjs'
import {
  BENCH_ENTRY,
  BENCH_VARS,
  benchProject,
  CODE_MINUTES,
  codesFromOutbox,
  FLOOR_ENTRY,
  load,
  phone,
  WARMUP_PHONES,
  warmUp,
  withDeadline,
} from './bench-load.mjs'
import { cpuSince, groupCpu, idleShare, RUNTIME_ROLE, serverProcessGroup, untilQuiet } from './server-cpu.mjs'

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '500' },
    connections: { type: 'string', default: '10' },
    interval: { type: 'string', default: '500' },
    out: { type: 'string', default: 'profiles' },
    'max-seconds': { type: 'string', default: '120' },
    'floor-only': { type: 'boolean', default: false },
  },
})
const N = Math.min(Math.max(Number(values.requests) || 0, 50), Math.floor((10_000 - WARMUP_PHONES) / 2))
const CONNECTIONS = Math.min(Math.max(Number(values.connections) || 0, 1), 100)
// Microseconds between samples of each isolate's profiler.
const INTERVAL_US = Math.min(Math.max(Number(values.interval) || 0, 50), 10_000)
const MAX_SECONDS = Math.min(Math.max(Number(values['max-seconds']) || 0, 5), 300)
const OUT = resolve(values.out, new Date().toISOString().replace(/[:.]/g, '-'))
const PORTS = [8800, 8849]
const RUN_DEADLINE_MINUTES = 30
// Our Worker's name in wrangler.toml: its isolate is `core:user:<name>` in the runtime.
const WORKER = /^name\s*=\s*"([^"]+)"/m.exec(readFileSync('wrangler.toml', 'utf8'))?.[1] ?? 'whatsapp-otp'

const PROJECT = benchProject()

/** Isolates grouped as the report names them, by the runtime's id. */
function isolateGroup(id) {
  if (id === `core:user:${WORKER}`) return 'our Worker'
  if (id.startsWith('d1:')) return 'D1 simulator'
  if (id.startsWith('kv:')) return 'KV simulator'
  if (id.startsWith('queues:')) return 'Queues simulator'
  if (id === 'core:user:miniflare-observability-collector') return 'log collector'
  if (id === 'core:entry') return "miniflare's entry (routing)"
  return 'other'
}

// ---------------------------------------------------------------------------------------------
// Finding the inspectors: the server's workerd processes and the ports they listen on.

/** Ports the process listens on (TCP, IPv4 and IPv6), from /proc. */
function listeningPorts(pid) {
  const inodes = new Set()
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
        if (match) inodes.add(match[1])
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return []
  }
  const ports = []
  for (const table of ['tcp', 'tcp6']) {
    let text = ''
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      // local address, state 0A (LISTEN), inode
      if (fields[3] === '0A' && inodes.has(fields[9])) ports.push(Number.parseInt(fields[1].split(':')[1], 16))
    }
  }
  return ports
}

function groupPids(pgid) {
  return readdirSync('/proc').filter((pid) => {
    if (!/^[0-9]+$/.test(pid)) return false
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) === pgid
    } catch {
      return false
    }
  })
}

/**
 * The isolates to profile: every target of the runtime's inspector, with our Worker's reached through
 * wrangler's inspector proxy (the runtime accepts one connection per isolate, and the proxy has it).
 */
async function inspectorTargets(pgid) {
  let runtime = null
  let proxy = null
  for (const pid of groupPids(pgid)) {
    for (const port of listeningPorts(pid)) {
      let list
      try {
        const res = await fetch(`http://127.0.0.1:${port}/json`, { signal: AbortSignal.timeout(2_000) })
        list = await res.json()
      } catch {
        continue // not an inspector
      }
      if (!Array.isArray(list)) continue
      if (list.some((t) => String(t.id).startsWith('core:'))) runtime = list
      else if (list.length === 1 && String(list[0].webSocketDebuggerUrl).endsWith('/ws')) proxy = list[0]
    }
  }
  if (!runtime) throw new Error("the workerd runtime's inspector was not found")
  if (!proxy) throw new Error("wrangler's inspector proxy was not found")
  return runtime.map((t) =>
    t.id === `core:user:${WORKER}`
      ? { id: t.id, url: proxy.webSocketDebuggerUrl, viaProxy: true }
      : { id: t.id, url: t.webSocketDebuggerUrl, viaProxy: false },
  )
}

/** A minimal Chrome DevTools Protocol client over the WebSocket Node provides. */
class Inspector {
  static async connect(target) {
    // wrangler's proxy accepts a loopback Origin; the runtime's inspector needs none.
    // Node's WebSocket (undici) takes the headers as its second argument, beyond the DOM type.
    /** @type {any} */
    const options = target.viaProxy ? { headers: { origin: 'http://127.0.0.1' } } : undefined
    /** @type {any} */
    const socket = new WebSocket(target.url, options)
    await /** @type {Promise<void>} */ (
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no inspector connection to ${target.id}`)), 10_000)
        socket.onopen = () => {
          clearTimeout(timer)
          resolve()
        }
        socket.onerror = () => {
          clearTimeout(timer)
          reject(new Error(`inspector connection to ${target.id} failed`))
        }
      })
    )
    return new Inspector(target.id, socket)
  }

  constructor(id, socket) {
    this.id = id
    this.socket = socket
    this.next = 0
    this.pending = new Map()
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data)
      const waiter = message.id === undefined ? undefined : this.pending.get(message.id)
      if (!waiter) return // events, and replies to the proxy's own messages
      this.pending.delete(message.id)
      if (message.error) waiter.reject(new Error(`${this.id}: ${message.error.message}`))
      else waiter.resolve(message.result)
    }
  }

  send(method, params = {}, timeoutMs = 60_000) {
    const id = ++this.next
    this.socket.send(JSON.stringify({ id, method, params }))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`${this.id}: ${method} had no answer in ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer)
          resolve(value)
        },
        reject: (err) => {
          clearTimeout(timer)
          reject(err)
        },
      })
    })
  }

  close() {
    this.socket.close()
  }
}

// ---------------------------------------------------------------------------------------------
// The loads.

/**
 * The three loads on `count` new numbers from `first` on: the bare route (3 × count), login_or_create
 * with the queue consumer delivering the codes, authenticate with those codes. `around(name, run)`
 * wraps each measured part (its CPU runs until the server is idle again).
 */
async function workloads(url, pgid, first, around, quiet = {}) {
  const phones = Array.from({ length: N }, (_, i) => phone(first + i))
  const methods = new Array(N)
  const common = { connections: CONNECTIONS, maxSeconds: MAX_SECONDS, defaultProject: PROJECT }
  const runs = {}
  const measured = async (name, spec) => {
    runs[name] = await around(name, async () => {
      const before = groupCpu(pgid)
      const loadAverage = loadavg()[0]
      const row = await load(url, { ...common, ...spec, name })
      const cpu = cpuSince(before, await untilQuiet(pgid, quiet))
      if (!row.ok) {
        const missing = `${row.errors} connection errors, ${row.timeouts} of them timeouts after 10 s`
        throw new Error(`${name}: not every reply was ${spec.expect} (${JSON.stringify(row.statuses)}; ${missing})`)
      }
      return { ...row, cpu, loadAverage }
    })
  }
  await measured('GET /health', { method: 'GET', path: '/health', amount: 3 * N, expect: 200 })
  await measured('login_or_create', {
    path: '/v1/otps/whatsapp/login_or_create',
    body: (i) => ({ phone_number: phones[i], expiration_minutes: CODE_MINUTES }),
    onBody: (i, reply) => (methods[i] = reply.phone_id),
    amount: N,
    expect: 200,
  })
  // Delivered by now (the server went idle); reading them is not measured.
  const codes = await codesFromOutbox(url, PROJECT, phones, 1)
  await measured('authenticate', {
    path: '/v1/otps/authenticate',
    body: (i) => ({ method_id: methods[i], code: codes[i] }),
    amount: N,
    expect: 200,
  })
  return runs
}

// ---------------------------------------------------------------------------------------------
// Reading the profiles.

const SKIPPED = new Set(['(idle)'])

/** Samples per node id, and the busy ones (everything but "(idle)"). */
function sampleCounts(profile) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const counts = new Map()
  let busy = 0
  for (const id of profile.samples) {
    if (SKIPPED.has(nodes.get(id)?.callFrame.functionName)) continue
    counts.set(id, (counts.get(id) ?? 0) + 1)
    busy++
  }
  return { nodes, counts, busy }
}

/** The newest source map wrangler wrote for the Worker's bundle, if any. */
function bundleSourceMap() {
  const root = '.wrangler/tmp'
  let newest = null
  try {
    for (const dir of readdirSync(root)) {
      const file = join(root, dir, 'entry.js.map')
      try {
        const mtime = statSync(file).mtimeMs
        if (!newest || mtime > newest.mtime) newest = { file, mtime }
      } catch {
        // no bundle here
      }
    }
  } catch {
    return null
  }
  if (!newest) return null
  return { map: new SourceMap(JSON.parse(readFileSync(newest.file, 'utf8'))), dir: join(newest.file, '..') }
}

/** A frame as `function file:line`, mapped through the bundle's source map when it is the Worker's. */
function frameName(frame, sourceMap) {
  const name = frame.functionName || '(anonymous)'
  if (!frame.url) return { name, native: true }
  if (sourceMap && frame.url === 'entry.js' && frame.lineNumber >= 0) {
    const entry = sourceMap.map.findEntry(frame.lineNumber, frame.columnNumber)
    if (entry?.originalSource) {
      const file = relative(process.cwd(), resolve(sourceMap.dir, entry.originalSource))
      return { name: `${entry.name || name} ${file}:${entry.originalLine + 1}`, native: false, file }
    }
  }
  return { name: `${name} ${frame.url}${frame.lineNumber >= 0 ? `:${frame.lineNumber + 1}` : ''}`, native: false }
}

/**
 * Our Worker's top functions: self samples by function (a native frame, such as a binding's C++ or a
 * builtin, is named with its nearest JavaScript caller), and total samples of the functions in src/.
 */
function topFunctions(profile, sourceMap, limit = 15) {
  const { nodes, counts, busy } = sampleCounts(profile)
  const parent = new Map()
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id)
  const names = new Map()
  const named = (id) => {
    if (!names.has(id)) names.set(id, frameName(nodes.get(id).callFrame, sourceMap))
    return names.get(id)
  }
  const self = new Map()
  const total = new Map()
  for (const [id, n] of counts) {
    let label = named(id).name
    if (named(id).native) {
      let up = parent.get(id)
      while (up !== undefined && named(up).native) up = parent.get(up)
      label = `${label} (native) ← ${up === undefined ? '(root)' : named(up).name}`
    }
    self.set(label, (self.get(label) ?? 0) + n)
    const seen = new Set()
    for (let up = id; up !== undefined; up = parent.get(up)) {
      const frame = named(up)
      if (!frame.file?.startsWith('src/') || seen.has(frame.name)) continue
      seen.add(frame.name)
      total.set(frame.name, (total.get(frame.name) ?? 0) + n)
    }
  }
  const top = (map) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, n]) => ({ name, share: n / busy }))
  return { self: top(self), total: top(total) }
}

// ---------------------------------------------------------------------------------------------
// The report.

const row = (cells) => `| ${cells.join(' | ')} |`
const pct = (x) => `${(100 * x).toFixed(1)}%`
const ms = (x) => x.toFixed(2)

function cpuTable(runs) {
  const roles = [...new Set(Object.values(runs).flatMap((r) => Object.keys(r.cpu.byRole)))].sort()
  return [
    row(['Load', 'Requests', 'req/s', 'Load avg', 'Server CPU ms / request', ...roles.map((r) => `${r} ms`)]),
    row(['---', ...Array(4 + roles.length).fill('---:')]),
    ...Object.entries(runs).map(([name, r]) =>
      row([
        name,
        r.requests,
        Math.round(r.rps),
        r.loadAverage.toFixed(1),
        ms(r.cpu.total / r.requests),
        ...roles.map((role) => ms((r.cpu.byRole[role] ?? 0) / r.requests)),
      ]),
    ),
  ]
}

/** Our loads beside the floor's: throughput, its ratio to the same server's bare route, and CPU. */
function floorTable(ours, floor) {
  const bare = (runs) => runs['GET /health']?.rps ?? Number.NaN
  const perRequest = (r, role) => (role ? (r.cpu.byRole[role] ?? 0) : r.cpu.total) / r.requests
  const lines = [
    row([
      'Load',
      'Ours: req/s (÷ bare)',
      'Floor: req/s (÷ bare)',
      'Ours: server CPU ms / request',
      'Floor: server CPU ms / request',
      'Ours: runtime ms / request',
      'Floor: runtime ms / request',
      'Ours above the floor: runtime ms',
    ]),
    row(['---', ...Array(7).fill('---:')]),
  ]
  for (const [name, r] of Object.entries(ours)) {
    const f = floor[name]
    if (!f) continue
    const ratio = (x, runs) => (name === 'GET /health' ? '' : ` (${(x.rps / bare(runs)).toFixed(2)}×)`)
    lines.push(
      row([
        name,
        `${Math.round(r.rps)}${ratio(r, ours)}`,
        `${Math.round(f.rps)}${ratio(f, floor)}`,
        ms(perRequest(r)),
        ms(perRequest(f)),
        ms(perRequest(r, RUNTIME_ROLE)),
        ms(perRequest(f, RUNTIME_ROLE)),
        ms(perRequest(r, RUNTIME_ROLE) - perRequest(f, RUNTIME_ROLE)),
      ]),
    )
  }
  return lines
}

function shareTables(profiled) {
  const lines = []
  const groups = [...new Set(Object.values(profiled).flatMap((p) => p.isolates.map((i) => isolateGroup(i.id))))]
  lines.push(
    row(['Isolate', ...Object.keys(profiled).map((name) => `${name}: share (ms / request)`)]),
    row(['---', ...Object.keys(profiled).map(() => '---:')]),
  )
  for (const group of groups) {
    const cells = Object.values(profiled).map((p) => {
      const busy = p.isolates.filter((i) => isolateGroup(i.id) === group).reduce((n, i) => n + i.busy, 0)
      return `${pct(busy / p.busy)} (${ms((busy * INTERVAL_US) / 1000 / p.requests)})`
    })
    lines.push(row([group, ...cells]))
  }
  lines.push(
    '',
    'By isolate (the runtime\'s ids; "other" above is the sum of the ones not named there):',
    '',
    row(['Isolate id', ...Object.keys(profiled)]),
    row(['---', ...Object.keys(profiled).map(() => '---:')]),
  )
  const ids = [
    ...new Set(Object.values(profiled).flatMap((p) => p.isolates.filter((i) => i.busy > 0).map((i) => i.id))),
  ]
  for (const id of ids) {
    lines.push(
      row([id, ...Object.values(profiled).map((p) => pct((p.isolates.find((i) => i.id === id)?.busy ?? 0) / p.busy))]),
    )
  }
  return lines
}

async function run() {
  const started = new Date().toISOString().replace(/\.\d+Z$/, 'Z')
  const entry = values['floor-only'] ? FLOOR_ENTRY : BENCH_ENTRY
  const { plain, profiled } = await onWarmServer(entry, profiledLoads)
  const lines = [
    `${values['floor-only'] ? 'Floor (src/bench/floor.ts; "our Worker" below is the floor) p' : 'P'}rofile ${started} on ${availableParallelism()} CPUs (${cpus()[0]?.model?.trim() ?? 'unknown'}), Node ${process.version}; ` +
      `${N} requests per load (${3 * N} for GET /health) over ${CONNECTIONS} connections, each login for a new number; ` +
      `login_or_create's CPU runs until the queue consumer has delivered every code and the server is idle.`,
    '',
    'Server CPU per request from /proc (user + system time of each process of the server), no profiler attached:',
    '',
    ...cpuTable(plain),
    '',
    `Share of the workerd runtime's samples per isolate (V8 CPU profiles, one sample every ${INTERVAL_US} µs while ` +
      'an isolate runs; "(idle)" left out), and the same as ms per request (samples × interval, with the ' +
      "profiler's own overhead):",
    '',
    ...shareTables(profiled),
  ]
  for (const [name, p] of Object.entries(profiled)) {
    if (!p.top) continue
    lines.push(
      '',
      `Our Worker, ${name}: top functions by self samples (share of the Worker's samples; native code named with its caller)`,
      '',
      row(['Function', 'Self']),
      row(['---', '---:']),
      ...p.top.self.map((f) => row([f.name.replaceAll('|', '\\|'), pct(f.share)])),
      '',
      `Our Worker, ${name}: functions of src/ by total samples (with what they call)`,
      '',
      row(['Function', 'Total']),
      row(['---', '---:']),
      ...p.top.total.map((f) => row([f.name.replaceAll('|', '\\|'), pct(f.share)])),
    )
  }
  lines.push('', `Profiles (.cpuprofile, one per isolate and load): ${relative(process.cwd(), OUT)}`)

  // 3. The floor, started and loaded the same way, no profiler.
  if (!values['floor-only']) {
    const floor = await onWarmServer(FLOOR_ENTRY, (url, pgid) =>
      workloads(url, pgid, WARMUP_PHONES, (_name, measure) => measure()),
    )
    lines.push(
      '',
      'The floor (src/bench/floor.ts: our bindings, only the storage round trips the stack requires, nothing else), ' +
        'the same loads without a profiler, beside ours from step 1. "Runtime" is the workerd process that runs the ' +
        'Worker with the D1, KV and Queues simulators and the log collector; under load its one thread is what ' +
        'login_or_create waits for.',
      '',
      ...floorTable(plain, floor),
    )
  }
  console.log(lines.join('\n'))
}

/**
 * Starts a server with `entry` as the bench does (the profile's project, a fresh state), warms it up
 * (warmUp, with one unmeasured bare run at load), runs `fn(url, pgid)` and stops the server whatever
 * happens; on a failure the end of the server's output goes to stderr.
 */
async function onWarmServer(entry, fn) {
  const server = await startServer({ projects: [PROJECT], vars: BENCH_VARS, ports: PORTS, entry })
  try {
    const pgid = serverProcessGroup(server.persistTo)
    await warmUp(server.baseUrl, PROJECT, { amount: 3 * N, connections: CONNECTIONS, maxSeconds: MAX_SECONDS })
    return await fn(server.baseUrl, pgid)
  } catch (err) {
    console.error(`--- server output (${entry}) ---\n${server.output().slice(-4000)}`)
    throw err
  } finally {
    await server.stop()
  }
}

/** Steps 1 and 2 on one warm server: the loads without a profiler, then again with every isolate profiled. */
async function profiledLoads(url, pgid) {
  const inspectors = []
  try {
    // 1. No profiler: the CPU per request the operating system counts.
    const plain = await workloads(url, pgid, WARMUP_PHONES, (_name, measure) => measure())

    // 2. Every isolate profiled, on new numbers.
    const targets = await inspectorTargets(pgid)
    for (const target of targets) inspectors.push(await Inspector.connect(target))
    for (const inspector of inspectors) {
      await inspector.send('Profiler.enable')
      await inspector.send('Profiler.setSamplingInterval', { interval: INTERVAL_US })
    }
    const sourceMap = bundleSourceMap()
    const profiled = {}
    // The profilers cost CPU of their own even when nothing runs: idle is that much more.
    for (const inspector of inspectors) await inspector.send('Profiler.start')
    const idle = await idleShare(pgid)
    for (const inspector of inspectors) await inspector.send('Profiler.stop')
    const quiet = { idleShare: idle + 0.02 }
    await workloads(
      url,
      pgid,
      WARMUP_PHONES + N,
      async (name, measure) => {
        for (const inspector of inspectors) await inspector.send('Profiler.start')
        const result = await measure()
        const dir = join(OUT, name.replace(/[^A-Za-z0-9_]+/g, '-').replace(/^-|-$/g, ''))
        mkdirSync(dir, { recursive: true })
        const isolates = []
        for (const inspector of inspectors) {
          const { profile } = await inspector.send('Profiler.stop')
          writeFileSync(
            join(dir, `${inspector.id.replace(/[^A-Za-z0-9_.-]+/g, '_')}.cpuprofile`),
            JSON.stringify(profile),
          )
          isolates.push({ id: inspector.id, busy: sampleCounts(profile).busy, profile })
        }
        const worker = isolates.find((i) => i.id === `core:user:${WORKER}`)
        profiled[name] = {
          requests: result.requests,
          busy: isolates.reduce((n, i) => n + i.busy, 0),
          isolates: isolates.map(({ id, busy }) => ({ id, busy })),
          top: worker ? topFunctions(worker.profile, sourceMap) : null,
        }
        return result
      },
      quiet,
    )
    return { plain, profiled }
  } finally {
    for (const inspector of inspectors) inspector.close()
  }
}

await withDeadline('profile', RUN_DEADLINE_MINUTES, run)
