/**
 * `--shard i/n`: the cases of a campaign are numbered 0, 1, 2, ...; shard `i` of `n` runs the
 * cases whose number is `i - 1` modulo `n` (round robin, so that every shard gets early and
 * late cases alike). Every shard numbers the cases the same way, so the shards of one
 * campaign are disjoint and together are the whole of it.
 * @internal
 */

/** One shard of `count`, 1-based. */
export interface Shard {
  readonly index: number
  readonly count: number
}

/** The largest shard count accepted. */
export const MAX_SHARDS = 10_000

/** Parses `i/n`; a message naming the flag when it is not one. */
export const parse = (text: string): Shard | string => {
  const match = /^([1-9][0-9]{0,4})\/([1-9][0-9]{0,4})$/.exec(text)
  const shown = JSON.stringify(text).slice(0, 40)
  if (match === null) return `--shard ${shown}: expected i/n, two whole numbers with 1 <= i <= n (e.g. 2/3)`
  const index = Number(match[1])
  const count = Number(match[2])
  if (count > MAX_SHARDS) return `--shard ${shown}: at most ${MAX_SHARDS} shards`
  if (index > count) return `--shard ${shown}: shard ${index} of ${count} does not exist (1 <= i <= n)`
  return { index, count }
}

/** Whether case `index` (0-based) is the shard's; every case is the whole run's. */
export const owns = (shard: Shard | undefined, index: number): boolean =>
  shard === undefined || index % shard.count === shard.index - 1
