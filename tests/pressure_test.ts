import { assertEquals } from "./_assert.ts";
import { pressureWindow, readPressure, wasBusy } from "../shared/pressure.ts";

Deno.test("pressure: the stalled share of a run, and when a run counts as busy", () => {
  const before = { avg10: 2, totalUs: 1_000_000 };
  const after = { avg10: 3, totalUs: 1_150_000 };
  const window = pressureWindow(before, after, 1000);
  assertEquals(window.stallPct, 15);
  assertEquals(wasBusy(window), true);
  assertEquals(wasBusy(pressureWindow(before, { avg10: 2, totalUs: 1_050_000 }, 1000)), false);
  assertEquals(pressureWindow(null, after, 1000).stallPct, null);
});

Deno.test("pressure: a reading is null or has finite numbers", () => {
  const reading = readPressure();
  if (reading !== null) {
    assertEquals(Number.isFinite(reading.avg10) && Number.isFinite(reading.totalUs), true);
  }
});
