import type * as Device from "../Device.js"

/** @internal */
export const TypeId: typeof Device.TypeId = Symbol.for("@devscope/core/Device") as any

/** @internal */
export class DeviceImpl implements Device.Device {
  readonly [TypeId]: Device.TypeId = TypeId
  state: Device.State = "unbound"
  driver: string | undefined = undefined
  constructor(
    readonly name: string,
    readonly bus: string,
    readonly ids: Device.Ids,
    readonly parent: string | undefined = undefined
  ) {}
  toString() {
    return `Device(${this.bus}/${this.name}, ${this.state}${this.driver ? `, ${this.driver}` : ""})`
  }
  toJSON() {
    return { _id: "Device", name: this.name, bus: this.bus, ids: this.ids, state: this.state, driver: this.driver, parent: this.parent }
  }
}
