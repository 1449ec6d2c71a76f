/**
 * B4, throughput: the example NIC and block drivers (examples/nic, examples/blk) against
 * plain-TypeScript drivers doing the same work on the same simulated devices.
 *
 * PLACEHOLDER: not implemented yet. It waits for the example drivers (issue 6 asks for it;
 * other work finishes examples/nic and examples/blk). When they land, measure packets/s and
 * requests/s here, return the tables like b1.ts does, and `pnpm bench` picks it up.
 */
import type { Section } from "./report.js"

export const run = async (): Promise<Section> => ({
  id: "b4",
  title: "B4: NIC and block throughput (not measured yet)",
  intro: `
Placeholder: B4 compares the example NIC and block drivers with plain-TypeScript drivers on
the same simulated devices. It waits for examples/nic and examples/blk to be finished;
scripts/bench/b4.ts is where it goes.`,
  tables: []
})
