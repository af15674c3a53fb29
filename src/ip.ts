import {
  convertIPv4BinaryToString,
  convertIPv4MappedIPv6ToIPv4,
  convertIPv4ToBinary,
  convertIPv6BinaryToString,
  convertIPv6ToBinary,
  distinctRemoteAddr,
  isIPv4MappedIPv6,
} from 'hono/utils/ipaddr'

/**
 * An IP address parsed by hono's ipaddr helpers: IPv4 in its one dotted spelling, or IPv6 as its 128
 * bits. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is its IPv4 address.
 */
export type ParsedIp = { v4: string } | { v6: bigint }

/** The address, or null when it is not one (a zod-checked value always is). */
export function parseIp(ip: string): ParsedIp | null {
  try {
    if (distinctRemoteAddr(ip) === 'IPv4') return { v4: convertIPv4BinaryToString(convertIPv4ToBinary(ip)) }
    const bits = convertIPv6ToBinary(ip)
    return isIPv4MappedIPv6(bits) ? { v4: convertIPv4BinaryToString(convertIPv4MappedIPv6ToIPv4(bits)) } : { v6: bits }
  } catch {
    return null
  }
}

/**
 * One spelling per address, so that `2001:db8::1`, `2001:0DB8:0:0:0:0:0:1` and `::ffff:192.0.2.1`
 * vs `192.0.2.1` compare equal. Input that is not an address is only lower-cased.
 */
export function canonicalIp(ip: string): string {
  const parsed = parseIp(ip)
  if (!parsed) return ip.toLowerCase()
  return 'v4' in parsed ? parsed.v4 : convertIPv6BinaryToString(parsed.v6)
}
