import { Effect, TestContext } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { type Browser, chromium, type Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { RunRecord } from "../src/internal/record.js"
import { toHtml } from "../src/internal/report.js"
import { HOSTILE, makeRecord } from "../test/recordFixture.js"

const SCREENSHOT = "/tmp/report.png"

let browser: Browser
let page: Page
let record: RunRecord
let dir: string
const problems: Array<string> = []

beforeAll(async () => {
  // About 500 ms of virtual time and 11 devices: the size the report must stay readable at.
  record = await Effect.runPromise(makeRecord({ large: true }).pipe(Effect.provide(TestContext.TestContext)))
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "devscope-report-"))
  const file = path.join(dir, "report.html")
  fs.writeFileSync(file, toHtml(record))
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync"
    ]
  })
  page = await browser.newPage({ viewport: { width: 1330, height: 900 } })
  const url = pathToFileURL(file).href
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`))
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`)
  })
  page.on("requestfailed", (r) => problems.push(`requestfailed: ${r.url()}`))
  // The page is self-contained: the only request is for the page itself.
  page.on("request", (r) => {
    if (r.url() !== url) problems.push(`request: ${r.url()}`)
  })
  await page.goto(url, { waitUntil: "load" })
})

afterAll(async () => {
  await browser?.close()
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
})

describe("the HTML report in Chromium", () => {
  it("loads with no error, no failed or external request, and no script", async () => {
    expect(problems).toEqual([])
    expect(await page.locator("script").count()).toBe(0)
    expect(await page.title()).toBe("devscope: fixture (FAIL)")
    expect(await page.locator("#result").textContent()).toBe("FAIL")
    expect(await page.locator("li.violation").count()).toBe(record.violations.length)
  })

  it("renders the timeline: one row per device, stacked, inside a visible SVG", async () => {
    const svg = page.locator("svg.timeline")
    const box = await svg.boundingBox()
    expect(box).not.toBeNull()
    expect(box!.width).toBeGreaterThan(800)
    expect(box!.height).toBeGreaterThan(300)
    const rows = page.locator("svg.timeline g.device-row")
    expect(record.devices.length).toBeGreaterThanOrEqual(10)
    expect(await rows.count()).toBe(record.devices.length)
    const names = await rows.evaluateAll((gs) => gs.map((g) => g.getAttribute("data-device")))
    expect(names).toEqual(record.devices.map((d) => d.device))
    // Rows are stacked top to bottom without overlapping, each with a bound span drawn.
    let bottom = -Infinity
    for (let i = 0; i < record.devices.length; i++) {
      const row = await rows.nth(i).locator("rect.row-bg").boundingBox()
      expect(row!.height).toBeGreaterThan(20)
      expect(row!.y).toBeGreaterThanOrEqual(bottom - 0.5)
      bottom = row!.y + row!.height
      const spans = rows.nth(i).locator("rect.span")
      expect(await spans.count()).toBeGreaterThan(0)
      const first = await spans.first().boundingBox()
      expect(first!.width).toBeGreaterThan(0)
    }
    // The hostile name is text, shown as written.
    expect(await page.locator("svg.timeline text.dev").first().textContent()).toContain("sensor0")
    expect(await page.locator(`tr[data-device]`).nth(1).locator("code").textContent()).toBe(HOSTILE)
  })

  it("highlights the IOMMU fault on its device's row, and every span has a tooltip", async () => {
    const faults = page.locator("svg.timeline g.iommu-fault")
    expect(await faults.count()).toBe(record.iommuFaults.length)
    const row = await page.locator(`svg.timeline g.device-row[data-device="edu1"] rect.row-bg`).boundingBox()
    const mark = await faults.first().locator("circle").boundingBox()
    expect(mark!.y).toBeGreaterThanOrEqual(row!.y)
    expect(mark!.y + mark!.height).toBeLessThanOrEqual(row!.y + row!.height)
    const untitled = await page.locator("svg.timeline rect.span, svg.timeline rect.resource").evaluateAll((rs) =>
      rs.filter((r) => r.querySelector("title") === null).length
    )
    expect(untitled).toBe(0)
    expect(await page.locator("svg.timeline g.action").count()).toBeGreaterThan(5)
  })

  it("takes a screenshot", async () => {
    await page.screenshot({ path: SCREENSHOT, fullPage: true })
    await page.locator("svg.timeline").screenshot({ path: "/tmp/report-timeline.png" })
    expect(fs.statSync(SCREENSHOT).size).toBeGreaterThan(10_000)
  })
})
