/**
 * A per-isolate cache of records read from D1 on a hot path, with a lifetime and a size bound. An
 * entry is fresh for `ttlMs` after it was stored (never when the clock reads earlier than that); past
 * `max` entries the one stored longest ago is dropped, so keys taken from unauthenticated input (a
 * claimed project id, a public JWKS path) cannot grow it without bound.
 */
export class IsolateCache<V> {
  readonly #entries = new Map<string, { value: V; storedAt: number }>()
  readonly #ttlMs: number
  readonly #max: number

  constructor(ttlMs: number, max: number) {
    this.#ttlMs = ttlMs
    this.#max = max
  }

  /**
   * The value stored under `key` if it is still fresh at `at`: stored less than the cache's lifetime
   * ago, or less than `maxAgeMs` ago when that is given (a caller with reason to doubt an entry asks
   * for a younger one).
   */
  get(key: string, at: number, maxAgeMs = this.#ttlMs): V | undefined {
    const entry = this.#entries.get(key)
    if (!entry || entry.storedAt > at || at - entry.storedAt >= Math.min(maxAgeMs, this.#ttlMs)) return undefined
    return entry.value
  }

  /** The value stored under `key`, fresh or not. */
  peek(key: string): V | undefined {
    return this.#entries.get(key)?.value
  }

  set(key: string, value: V, at: number): void {
    this.#entries.delete(key)
    if (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next()
      if (!oldest.done) this.#entries.delete(oldest.value)
    }
    this.#entries.set(key, { value, storedAt: at })
  }

  delete(key: string): void {
    this.#entries.delete(key)
  }

  clear(): void {
    this.#entries.clear()
  }
}
