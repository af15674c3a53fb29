import { afterEach, describe, expect, it, vi } from 'vitest'
import { bytesEqual, generateCode, open, seal } from '../src/crypto'

describe('generateCode', () => {
  // A failing assertion ends the test before its last line: the mocked getRandomValues is restored
  // here so that it cannot leak into the tests that follow.
  afterEach(() => {
    vi.restoreAllMocks()
  })

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
    // Two draws of three random bytes each are the same with probability 2^-24; a leaked mock makes
    // every draw identical.
    const a = crypto.getRandomValues(new Uint8Array(3))
    const b = crypto.getRandomValues(new Uint8Array(3))
    expect(vi.isMockFunction(crypto.getRandomValues)).toBe(false)
    expect(Array.from(a)).not.toEqual(Array.from(b))
  })

  it('spreads codes evenly over the leading digit (chi-square, 9 degrees of freedom)', () => {
    const n = 50_000
    const counts = new Array<number>(10).fill(0)
    for (let i = 0; i < n; i++) {
      const d = Number(generateCode()[0])
      counts[d] = (counts[d] ?? 0) + 1
    }
    const expected = n / 10
    const chi = counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0)
    expect(chi).toBeLessThan(27.88) // p = 0.001
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
