import type * as RegisterMap from "../RegisterMap.js"

const widthMask = (width: RegisterMap.Width): number => (width === 32 ? 0xffffffff : (1 << width) - 1) >>> 0

const fieldRange = (reg: string, name: string, spec: RegisterMap.FieldSpec): readonly [number, number] => {
  if (spec.bit !== undefined && spec.bits === undefined) return [spec.bit, spec.bit]
  if (spec.bits !== undefined && spec.bit === undefined) return spec.bits
  throw new Error(`register ${reg}: field ${name} needs exactly one of "bit" or "bits"`)
}

/** @internal */
export const make = <const S extends RegisterMap.Spec>(name: string, size: number, spec: S): RegisterMap.RegisterMap<S> => {
  const registers: Record<string, RegisterMap.Register> = {}
  const byOffset = new Map<number, RegisterMap.Register>()
  const taken: Array<readonly [number, number, string]> = []
  for (const [reg, r] of Object.entries(spec)) {
    const width = r.width ?? 32
    const bytes = width / 8
    const where = `register map ${name}: register ${reg}`
    if (![8, 16, 32].includes(width)) throw new Error(`${where}: width ${width} is not 8, 16 or 32`)
    if (!Number.isInteger(r.offset) || r.offset < 0 || r.offset + bytes > size) {
      throw new Error(`${where}: offset ${r.offset} does not fit a ${size}-byte window`)
    }
    if (r.offset % bytes !== 0) throw new Error(`${where}: offset ${r.offset} is not aligned to ${bytes} bytes`)
    for (const [lo, hi, other] of taken) {
      if (r.offset < hi && lo < r.offset + bytes) throw new Error(`${where}: overlaps register ${other}`)
    }
    taken.push([r.offset, r.offset + bytes, reg])
    const all = widthMask(width)
    const fields: Array<RegisterMap.Field> = []
    let implemented = r.fields === undefined ? all : 0
    for (const [fieldName, f] of Object.entries(r.fields ?? {})) {
      const [lo, hi] = fieldRange(reg, fieldName, f)
      if (lo < 0 || hi < lo || hi >= width) throw new Error(`${where}: field ${fieldName} [${lo}..${hi}] outside ${width} bits`)
      const mask = ((hi - lo === 31 ? 0xffffffff : ((1 << (hi - lo + 1)) - 1)) << lo) >>> 0
      if ((implemented & mask) !== 0) throw new Error(`${where}: field ${fieldName} overlaps another field`)
      implemented = (implemented | mask) >>> 0
      fields.push({ name: fieldName, shift: lo, mask, values: f.values })
    }
    const reset = (r.reset ?? 0) >>> 0
    if ((reset & ~all) !== 0) throw new Error(`${where}: reset value ${reset} does not fit ${width} bits`)
    const register: RegisterMap.Register = { name: reg, offset: r.offset, width, access: r.access, reset, implemented, fields }
    registers[reg] = register
    byOffset.set(r.offset, register)
  }
  return {
    name,
    size,
    spec,
    registers: registers as RegisterMap.RegisterMap<S>["registers"],
    at: (offset) => byOffset.get(offset)
  }
}
