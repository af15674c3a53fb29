import { Batch } from '../db/batch'
import {
  anchorStatement,
  announcePauseStatement,
  claimMoveStatement,
  deleteAnchorStatement,
  endMoveStatement,
  flipStatement,
  liftPauseStatement,
  moveStepStatement,
  type Project,
  readProjectForMove,
  releaseMoveStatement,
  startMoveStatement,
} from '../db/projects'
import {
  captureStatements,
  clearLogStatement,
  countStatement,
  deleteByKeyStatement,
  dropCaptureStatements,
  type LogEntry,
  logEntriesStatement,
  MOVED_TABLES,
  pageStatement,
  purgeProjectStatement,
  type Row,
  rowKey,
  rowsByKeyStatement,
  tableColumns,
  writeStatements,
} from '../db/shard-move'
import { PROJECT_CACHE_TTL_MS } from '../settings'
import { MOVE_PAUSE_GRACE_MS } from './pause'

/**
 * Moving a project from one D1 shard to another with nothing lost (`npm run project:move`). The
 * procedure, one step after the other, each recorded on the project's directory row when done:
 *
 * 1. start: the source shard starts logging the keys of the project's rows written from now on
 *    (triggers for this project only, into shard_move_log); the target gets the project's anchor row
 *    and loses whatever an abandoned earlier move left there.
 * 2. copy: every row of the project is copied to the target, table by table, parents first (an
 *    upsert by primary key), while the project keeps running on the source; then what the log names
 *    is copied again, until little is left.
 * 3. pause: the pause is announced for one project-cache lifetime (30 s) later, so that every isolate
 *    has read it by then; from then on the project's requests are answered 503 with Retry-After and
 *    its deliveries wait in the queue (src/shards/pause.ts).
 * 4. catch_up: once the pause is on and MOVE_PAUSE_GRACE_MS more have passed (requests that read the
 *    project before the pause have finished their writes), what the log names is copied again until
 *    the log is empty (a row deleted in the source is deleted in the target); then every table's row
 *    count is compared between the two shards, and any difference stops the move before the flip.
 * 5. flip: projects.shard becomes the target and the pause ends (isolates re-read a paused record
 *    at most once a second, so within a second everywhere).
 * 6. purge: one project-cache lifetime after the flip, the source stops logging and its copy of the
 *    project is deleted; the move's record is cleared.
 *
 * Every step is idempotent and starts from what the directory says, so a move stopped anywhere (a
 * crash, a lost connection, `--until`) is finished by running it again, and one stopped before the
 * flip can be abandoned instead (abortMove), leaving the project where it was.
 */

export const MOVE_STEPS = ['start', 'copy', 'pause', 'catch_up', 'flip', 'purge'] as const
export type MoveStep = (typeof MOVE_STEPS)[number]

/** What the directory records as the last step done (projects.move_step), per step. */
const RECORDED: Record<MoveStep, string> = {
  start: 'started',
  copy: 'copied',
  pause: 'paused',
  catch_up: 'caught_up',
  flip: 'flipped',
  purge: 'purged',
}

/** Rows read per page while copying, and change-log entries per round. */
const PAGE_ROWS = 100
const LOG_ROUND = 500
/** JSON carried by one statement at most (D1 takes a value of up to 2 MB). */
const MAX_STATEMENT_JSON = 500_000
/** Rows deleted per statement by a purge. */
const PURGE_ROWS = 1_000
/**
 * How long a run of the move holds it without renewing its lease (it renews at every step and page):
 * a second run started meanwhile is refused, and a run that died frees the move after this long.
 */
export const MOVE_LEASE_MS = 2 * 60_000
/** Rounds of the change log before the pause; what is left is copied during the pause. */
const PRE_PAUSE_ROUNDS = 20

/** What the move works with: the databases, the clock, and the places a test or the script hooks in. */
export interface MoveDeps {
  /** The database of shard `n` (shard 0 is the directory); throws for a shard the deployment lacks. */
  shard(n: number): D1Database
  /** How many shards the deployment has. */
  shardCount: number
  now(): number
  sleep(ms: number): Promise<void>
  /**
   * False only when no Worker serves these databases (local state no server runs on): the waits
   * for isolate caches and for requests in flight are then skipped.
   */
  wait: boolean
  /** Called after each step is done and recorded; a test holds the move here, or stops it by throwing. */
  afterStep?(step: MoveStep): Promise<void> | void
  /** Progress lines. */
  log?(line: string): void
}

export interface MoveResult {
  projectId: string
  from: number
  to: number
  /** The steps this run did (none when the project was already on `to`). */
  steps: MoveStep[]
  /** Whether the move is finished (false when stopped by `until`). */
  done: boolean
  /** The project's rows per table in its shard at the end. */
  counts: Record<string, number>
}

/** A move that cannot go on: the message says why and what to do. */
export class MoveError extends Error {
  override readonly name = 'MoveError'
}

/**
 * Moves the project to shard `to`, or finishes the move under way; with `until`, stops after that
 * step (to copy in advance and pause later, say).
 */
export async function moveProject(
  deps: MoveDeps,
  { projectId, to, until }: { projectId: string; to: number; until?: MoveStep },
): Promise<MoveResult> {
  const directory = deps.shard(0)
  let project = await mustRead(directory, projectId)
  if (!Number.isInteger(to) || to < 0 || to >= deps.shardCount) {
    throw new MoveError(`shard ${to} does not exist: this deployment has shards 0 to ${deps.shardCount - 1}`)
  }
  if (project.move && project.move.to !== to) {
    throw new MoveError(
      `a move of ${projectId} to shard ${project.move.to} is under way: finish it (--to ${project.move.to}) or abort it first`,
    )
  }
  // This run's lease on the move: renewed as it goes, given back when it stops.
  const owner = crypto.randomUUID()
  const hold = async (forMs = 0) => {
    const at = deps.now()
    const { meta } = await claimMoveStatement(directory, projectId, owner, at, at + forMs + MOVE_LEASE_MS).run()
    if (!meta.changes) {
      const holder = await readProjectForMove(directory, projectId)
      const until = holder?.move?.ownerUntil
      throw new MoveError(
        `another run is moving ${projectId}${until ? ` (its lease ends ${new Date(until).toISOString()} unless it renews it)` : ''}: let it finish, or run again once it has stopped`,
      )
    }
  }
  if (!project.move) {
    if (project.shard === to) {
      return { projectId, from: to, to, steps: [], done: true, counts: await countRows(deps.shard(to), projectId) }
    }
    await sameSchema(deps, project.shard, to)
    // The start deletes whatever the target holds of the project: never the project's only rows, as
    // after a restore of the directory that left its record naming a shard it had moved away from.
    const [here, there] = await Promise.all([
      countRows(deps.shard(project.shard), projectId),
      countRows(deps.shard(to), projectId),
    ])
    if (!Object.values(here).some((n) => n > 0) && Object.values(there).some((n) => n > 0)) {
      throw new MoveError(
        `${projectId} has no rows on shard ${project.shard}, its recorded shard, but has rows on shard ${to}: its record may be stale; nothing done`,
      )
    }
    const ownerUntil = deps.now() + MOVE_LEASE_MS
    await startMoveStatement(directory, projectId, { from: project.shard, to, owner, ownerUntil }).run()
    project = await mustRead(directory, projectId)
    if (!project.move) throw new MoveError(`${projectId}: another move started at the same time`)
  }
  await hold()
  try {
    return await runSteps(deps, project, hold, until)
  } finally {
    await releaseMoveStatement(directory, projectId, owner).run()
  }
}

/** The steps of the move `project.move` not done yet, up to `until`, under this run's lease (`hold`). */
async function runSteps(
  deps: MoveDeps,
  project: Project,
  hold: (forMs?: number) => Promise<void>,
  until: MoveStep | undefined,
): Promise<MoveResult> {
  const projectId = project.id
  const directory = deps.shard(0)
  const move = project.move
  if (!move) throw new MoveError(`${projectId}: the move's record is gone`)
  const source = deps.shard(move.from)
  const target = deps.shard(move.to)
  const done = MOVE_STEPS.findIndex((step) => RECORDED[step] === move.step)
  const steps: MoveStep[] = []
  let columns: Record<string, string[]> | undefined
  const tableColumnsOnce = async () => {
    columns ??= await tableColumns(source)
    return columns
  }

  const run: Record<MoveStep, () => Promise<void>> = {
    start: async () => {
      await purgeCopy(target, projectId, false)
      if (move.to !== 0) await anchorStatement(target, project, move.to, deps.now()).run()
      await runAll(source, [clearLogStatement(source, projectId), ...captureStatements(source, projectId)])
    },
    copy: async () => {
      const cols = await tableColumnsOnce()
      for (const { table } of MOVED_TABLES) {
        let after: unknown[] | null = null
        let copied = 0
        for (;;) {
          const { results } = await pageStatement(source, table, projectId, after, PAGE_ROWS).all<Row>()
          if (results.length === 0) break
          await write(target, table, projectId, cols[table] ?? [], results, true)
          await hold()
          copied += results.length
          const last = results[results.length - 1] as Row
          after = JSON.parse(rowKey(table, last)) as unknown[]
          if (results.length < PAGE_ROWS) break
        }
        deps.log?.(`copied ${table}: ${copied} rows`)
      }
      const entries = await drainLog(source, target, projectId, cols, PRE_PAUSE_ROUNDS)
      deps.log?.(`copied again what changed meanwhile: ${entries} log entries`)
    },
    pause: async () => {
      const pauseAt = deps.now() + (deps.wait ? PROJECT_CACHE_TTL_MS : 0)
      await announcePauseStatement(directory, projectId, pauseAt).run()
    },
    catch_up: async () => {
      const paused = await mustRead(directory, projectId)
      const copyAt = (paused.move?.pauseAt ?? deps.now()) + MOVE_PAUSE_GRACE_MS
      await hold(copyAt - deps.now())
      await waitUntil(deps, copyAt, 'the pause and its grace')
      const entries = await drainLog(source, target, projectId, await tableColumnsOnce(), Number.POSITIVE_INFINITY)
      deps.log?.(`copied what changed before the pause: ${entries} log entries`)
      const [from, into] = await Promise.all([countRows(source, projectId), countRows(target, projectId)])
      const differences = Object.keys(from).filter((table) => from[table] !== into[table])
      if (differences.length > 0) {
        const list = differences.map((t) => `${t} ${from[t]} → ${into[t]}`).join(', ')
        throw new MoveError(`the copy differs from the source (${list}): not flipped; run the move again or abort it`)
      }
    },
    flip: async () => {
      await flipStatement(directory, projectId, deps.now()).run()
    },
    purge: async () => {
      const flipped = await mustRead(directory, projectId)
      const purgeAt = (flipped.move?.flippedAt ?? deps.now()) + PROJECT_CACHE_TTL_MS
      await hold(purgeAt - deps.now())
      await waitUntil(deps, purgeAt, 'the project cache')
      await runAll(source, [...dropCaptureStatements(source, projectId), clearLogStatement(source, projectId)])
      await purgeCopy(source, projectId, move.from !== 0)
      await endMoveStatement(directory, projectId).run()
    },
  }

  for (const [index, step] of MOVE_STEPS.entries()) {
    if (index <= done) continue
    deps.log?.(`${step}…`)
    await hold()
    await run[step]()
    if (step !== 'flip' && step !== 'purge') await moveStepStatement(directory, projectId, RECORDED[step]).run()
    steps.push(step)
    deps.log?.(`${step}: done`)
    await deps.afterStep?.(step)
    if (step === until) {
      return {
        projectId,
        from: move.from,
        to: move.to,
        steps,
        done: step === 'purge',
        counts: await countRows(target, projectId),
      }
    }
  }
  return { projectId, from: move.from, to: move.to, steps, done: true, counts: await countRows(target, projectId) }
}

/**
 * Abandons a move that has not flipped: the pause (if any) ends, the source stops logging, the
 * target's copy is deleted and the record cleared. The project stays on its shard, as if the move
 * had never started. Idempotent.
 */
export async function abortMove(deps: MoveDeps, projectId: string): Promise<{ projectId: string; shard: number }> {
  const directory = deps.shard(0)
  const project = await mustRead(directory, projectId)
  const move = project.move
  if (!move) return { projectId, shard: project.shard }
  if (move.flippedAt !== null) {
    throw new MoveError(`the move of ${projectId} has flipped to shard ${move.to}: finish it, then move it back`)
  }
  const owner = crypto.randomUUID()
  const at = deps.now()
  const { meta } = await claimMoveStatement(directory, projectId, owner, at, at + MOVE_LEASE_MS).run()
  if (!meta.changes) throw new MoveError(`another run is moving ${projectId}: let it finish or stop first`)
  await liftPauseStatement(directory, projectId).run()
  const source = deps.shard(move.from)
  await runAll(source, [...dropCaptureStatements(source, projectId), clearLogStatement(source, projectId)])
  await purgeCopy(deps.shard(move.to), projectId, move.to !== 0)
  await endMoveStatement(directory, projectId).run()
  return { projectId, shard: project.shard }
}

/** The project's rows per moved table in `db`. */
export async function countRows(db: D1Database, projectId: string): Promise<Record<string, number>> {
  const batch = new Batch()
  const handles = MOVED_TABLES.map(
    ({ table }) => [table, batch.add<{ n: number }>(countStatement(db, table, projectId))] as const,
  )
  await batch.run(db)
  return Object.fromEntries(handles.map(([table, h]) => [table, Number(h.first()?.n ?? 0)]))
}

async function mustRead(directory: D1Database, projectId: string): Promise<Project> {
  const project = await readProjectForMove(directory, projectId)
  if (!project) throw new MoveError(`no project ${projectId}`)
  return project
}

/** Both shards have the same columns in every moved table (the same migrations applied). */
async function sameSchema(deps: MoveDeps, from: number, to: number): Promise<void> {
  const [a, b] = await Promise.all([tableColumns(deps.shard(from)), tableColumns(deps.shard(to))])
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    throw new MoveError(`shards ${from} and ${to} differ in their tables: run \`npm run db:migrate\` first`)
  }
}

async function waitUntil(deps: MoveDeps, at: number, what: string): Promise<void> {
  if (!deps.wait) return
  const ms = at - deps.now()
  if (ms <= 0) return
  deps.log?.(`waiting ${Math.ceil(ms / 1000)} s for ${what}`)
  await deps.sleep(ms)
}

async function runAll(db: D1Database, statements: D1PreparedStatement[]): Promise<void> {
  const batch = new Batch()
  batch.addAll(statements)
  await batch.run(db)
}

/** Rows in groups whose JSON stays within what one statement carries. */
function chunks(rows: readonly Row[]): Row[][] {
  const groups: Row[][] = []
  let group: Row[] = []
  let bytes = 0
  for (const row of rows) {
    const size = JSON.stringify(row).length
    if (group.length > 0 && bytes + size > MAX_STATEMENT_JSON) {
      groups.push(group)
      group = []
      bytes = 0
    }
    group.push(row)
    bytes += size
  }
  if (group.length > 0) groups.push(group)
  return groups
}

/** Writes rows of one table into `db` in one batch (skipOrphans: see writeStatements). */
async function write(
  db: D1Database,
  table: string,
  projectId: string,
  columns: readonly string[],
  rows: readonly Row[],
  skipOrphans: boolean,
): Promise<void> {
  await runAll(
    db,
    chunks(rows).flatMap((group) => writeStatements(db, table, projectId, columns, group, { skipOrphans })),
  )
}

/**
 * Copies what the source's change log names, round after round, until it is empty or `maxRounds`
 * have run (before the pause, a round shorter than LOG_ROUND also ends it: the rest waits for the
 * pause). Each round reads the named rows from the source, then in one target batch deletes those the
 * source no longer has (child tables first) and writes the others (parents first), then forgets the
 * round's entries. A row that lacks its parent fails the batch here, loudly, rather than being skipped.
 * Returns the number of entries copied.
 */
async function drainLog(
  source: D1Database,
  target: D1Database,
  projectId: string,
  columns: Record<string, string[]>,
  maxRounds: number,
): Promise<number> {
  let total = 0
  for (let round = 0; round < maxRounds; round++) {
    const { results: entries } = await logEntriesStatement(source, projectId, LOG_ROUND).all<LogEntry>()
    if (entries.length === 0) break
    const keys = new Map<string, Set<string>>()
    for (const entry of entries) {
      const set = keys.get(entry.tbl) ?? new Set<string>()
      set.add(JSON.stringify(JSON.parse(entry.row_key)))
      keys.set(entry.tbl, set)
    }
    const read = new Batch()
    const handles = MOVED_TABLES.filter(({ table }) => keys.has(table)).map(({ table }) => ({
      table,
      keys: [...(keys.get(table) ?? [])],
      rows: read.add<Row>(rowsByKeyStatement(source, table, [...(keys.get(table) ?? [])])),
    }))
    await read.run(source)
    const writes: D1PreparedStatement[] = []
    for (const h of [...handles].reverse()) {
      const present = new Set(h.rows.rows().map((row) => rowKey(h.table, row)))
      const gone = h.keys.filter((k) => !present.has(k))
      if (gone.length > 0) writes.push(deleteByKeyStatement(target, h.table, gone))
    }
    for (const h of handles) {
      for (const group of chunks(h.rows.rows())) {
        writes.push(
          ...writeStatements(target, h.table, projectId, columns[h.table] ?? [], group, { skipOrphans: false }),
        )
      }
    }
    await runAll(target, writes)
    const upTo = entries[entries.length - 1]?.id
    await clearLogStatement(source, projectId, upTo).run()
    total += entries.length
    if (maxRounds !== Number.POSITIVE_INFINITY && entries.length < LOG_ROUND) break
  }
  return total
}

/**
 * Deletes the project's rows from one shard, child tables first, a bounded number per statement;
 * with `anchor`, its anchor row too (never in the directory, whose row is the project itself).
 */
async function purgeCopy(db: D1Database, projectId: string, anchor: boolean): Promise<void> {
  for (const { table } of [...MOVED_TABLES].reverse()) {
    for (;;) {
      const { meta } = await purgeProjectStatement(db, table, projectId, PURGE_ROWS).run()
      if ((meta.changes ?? 0) < PURGE_ROWS) break
    }
  }
  if (anchor) await deleteAnchorStatement(db, projectId).run()
}
