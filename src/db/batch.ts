/**
 * A D1 batch whose results are read by name, not by position. Each `add` hands back a handle for
 * that one statement; after `run` the handle reads its own result, wherever the statement ended up
 * in the batch. Adding, removing or reordering statements therefore never shifts another reader.
 *
 *   const batch = new Batch()
 *   const owner = batch.add<PhoneOwnerRow>(phoneOwnerStatement(...))
 *   batch.addAll(issue.statements)
 *   await batch.run(db)
 *   owner.first()
 *
 * A batch is one round trip and one transaction: a statement that throws (a CHECK constraint, say)
 * rolls back every write before it, and `run` rethrows that error unchanged.
 */

/** One statement's result, readable once its batch has run. */
export class Handle<T = Record<string, unknown>> {
  #result: D1Result | undefined

  /** Set by the batch that owns this handle when it has run. */
  settle(result: D1Result): void {
    this.#result = result
  }

  /** The raw D1 result; throws when read before the batch has run. */
  get result(): D1Result {
    if (!this.#result) throw new Error('batch result read before the batch ran')
    return this.#result
  }

  /** The statement's rows (empty for a write without RETURNING). */
  rows(): T[] {
    return this.result.results as T[]
  }

  /** The statement's first row, if any. */
  first(): T | undefined {
    return this.rows()[0]
  }

  /** Rows the statement inserted, updated or deleted. */
  get changes(): number {
    return this.result.meta.changes ?? 0
  }
}

export class Batch {
  readonly #statements: D1PreparedStatement[] = []
  readonly #handles: Handle<unknown>[] = []
  #ran = false

  /** Adds one statement; its handle reads its result after `run`. */
  add<T = Record<string, unknown>>(statement: D1PreparedStatement): Handle<T> {
    if (this.#ran) throw new Error('statement added to a batch that already ran')
    const handle = new Handle<T>()
    this.#statements.push(statement)
    this.#handles.push(handle as Handle<unknown>)
    return handle
  }

  /** Adds statements in order whose results nobody reads (writes checked by later statements). */
  addAll(statements: readonly D1PreparedStatement[]): void {
    for (const statement of statements) this.add(statement)
  }

  /** The rows D1 reported reading for the whole batch (meta.rows_read, D1's own meter), once it ran. */
  get rowsRead(): number {
    return this.#handles.reduce((rows, handle) => rows + (handle.result.meta.rows_read ?? 0), 0)
  }

  /** How many statements the batch holds. */
  get size(): number {
    return this.#statements.length
  }

  /** Runs every statement in one D1 batch (one round trip, one transaction) and settles the handles. */
  async run(db: D1Database): Promise<void> {
    if (this.#ran) throw new Error('batch ran twice')
    this.#ran = true
    if (this.#statements.length === 0) return
    const results = await db.batch(this.#statements)
    if (results.length !== this.#handles.length) {
      throw new Error(`D1 batch returned ${results.length} results for ${this.#handles.length} statements`)
    }
    for (const [i, result] of results.entries()) this.#handles[i]?.settle(result)
  }
}
