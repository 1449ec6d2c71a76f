/**
 * The default scenario of `devscope demo` (the same as examples/scenarios/demo.json; a test
 * keeps the two equal).
 */
import * as Either from "effect/Either"
import * as Scenario from "../Scenario.js"

export const demoJson = {
  "name": "demo",
  "description": "Two NICs on a cable, a block device and a temperature sensor under load: hot-unplug the disk with requests in flight, surprise-remove a NIC mid-transfer, plug both back, unload and reload the sensor driver.",
  "seed": 42,
  "duration": "300 millis",
  "devices": [
    {
      "name": "eth0",
      "kind": "nic",
      "cable": "cable0",
      "latency": "100 micros"
    },
    {
      "name": "eth1",
      "kind": "nic",
      "cable": "cable0",
      "latency": "100 micros"
    },
    {
      "name": "disk0",
      "kind": "blk",
      "sectors": 4096,
      "latency": "200 micros"
    },
    {
      "name": "temp0",
      "kind": "sensor"
    }
  ],
  "drivers": [
    {
      "kind": "nic"
    },
    {
      "kind": "blk"
    },
    {
      "kind": "sensor"
    }
  ],
  "workload": {
    "nic": {
      "window": 8,
      "frameSize": 256,
      "interval": "50 micros"
    },
    "blk": {
      "workers": 8,
      "writeRatio": 0.5,
      "sectorsPerRequest": 2,
      "interval": "100 micros",
      "flushEvery": 16
    },
    "sensor": {
      "readers": 2,
      "interval": "2 millis"
    }
  },
  "timeline": [
    {
      "at": "60 millis",
      "action": "unplug",
      "device": "disk0"
    },
    {
      "at": "100 millis",
      "action": "surprise",
      "device": "eth1"
    },
    {
      "at": "140 millis",
      "action": "plug",
      "device": "disk0"
    },
    {
      "at": "170 millis",
      "action": "plug",
      "device": "eth1"
    },
    {
      "at": "220 millis",
      "action": "unload",
      "driver": "sensor"
    },
    {
      "at": "250 millis",
      "action": "load",
      "driver": "sensor"
    }
  ]
} as const

export const demo: Scenario.Scenario = Either.getOrThrowWith(
  Scenario.decode(demoJson, "demo"),
  (e) => new Error(e.message)
)
