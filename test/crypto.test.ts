import { describe, expect, it, vi } from 'vitest'
import { bytesEqual, generateCode, open, seal } from '../src/crypto'

/** A deterministic stream of 32-bit words from `seed` (mulberry32): reproducible test draws. */
function seededWords(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
}

describe('generateCode', () => {
  it('always returns six ASCII digits', () => {
    for (let i = 0; i < 2_000; i++) expect(generateCode()).toMatch(/^[0-9]{6}$/)
  })

  it('rejects draws in the biased tail instead of folding them with a modulo', () => {
    const limit = 2 ** 32 - (2 ** 32 % 1_000_000)
    const draws = [limit, 2 ** 32 - 1, 123_456]
    const spy = vi.spyOn(crypto, 'getRandomValues').mockImplementation((array) => {
      if (array instanceof Uint32Array) array[0] = draws.shift() ?? 0
      return array
    })
    expect(generateCode()).toBe('123456')
    expect(spy).toHaveBeenCalledTimes(3)
  })

  it('draws from the real generator again after a test that mocked it', () => {
    // Two draws of 16 random bytes each are the same with probability 2^-128; a leaked mock makes
    // every draw identical.
    const a = crypto.getRandomValues(new Uint8Array(16))
    const b = crypto.getRandomValues(new Uint8Array(16))
    expect(vi.isMockFunction(crypto.getRandomValues)).toBe(false)
    expect(Array.from(a)).not.toEqual(Array.from(b))
  })

  it('spreads codes evenly over every digit (chi-square, 9 degrees of freedom)', () => {
    // The draws come from a seeded generator, not the platform's: the statistics are then fixed
    // numbers, so the test cannot fail by chance, while a mapping from draws to digits that favours
    // some digits still fails it (taking each digit as a random byte modulo 10, for one, gives 0-5
    // a 26/256 chance and 6-9 25/256: a chi-square near 70 per digit at this n).
    const next = seededWords(20261130)
    vi.spyOn(crypto, 'getRandomValues').mockImplementation((array) => {
      if (!ArrayBuffer.isView(array)) return array
      const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength)
      for (let i = 0; i < bytes.length; i += 4) {
        const word = next()
        for (let j = 0; j < 4 && i + j < bytes.length; j++) bytes[i + j] = (word >>> (8 * j)) & 0xff
      }
      return array
    })
    const n = 200_000
    const counts = Array.from({ length: 6 }, () => new Array<number>(10).fill(0))
    for (let i = 0; i < n; i++) {
      const code = generateCode()
      for (let position = 0; position < 6; position++) {
        const row = counts[position] as number[]
        const d = Number(code[position])
        row[d] = (row[d] ?? 0) + 1
      }
    }
    const expected = n / 10
    for (const row of counts) {
      const chi = row.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0)
      expect(chi).toBeLessThan(27.88) // p = 0.001
    }
  })
})

describe('bytesEqual', () => {
  it('compares contents and lengths', () => {
    expect(bytesEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3]))).toBe(true)
    expect(bytesEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4]))).toBe(false)
    expect(bytesEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2]))).toBe(false)
  })
})

describe('seal/open', () => {
  const key = 'dGVzdC1lbmNyeXB0aW9uLWtleS0wMDAwMDAwMDAwMDA='
  it('round-trips and refuses another context', async () => {
    const sealed = await seal(key, '123456', 'job-a')
    expect(sealed.ct).not.toContain('123456')
    expect(await open(key, sealed, 'job-a')).toBe('123456')
    await expect(open(key, sealed, 'job-b')).rejects.toThrow()
  })
})
