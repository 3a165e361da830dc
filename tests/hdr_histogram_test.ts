import { assertEquals, assertOk, assertThrows } from "./_assert.ts";
import {
  hdrBucketHigh,
  hdrBucketIndex,
  hdrBucketLow,
  HdrHistogram,
} from "../shared/hdr_histogram.ts";

Deno.test("hdr histogram: buckets tile the integers with at most 1/128 relative width", () => {
  let previousHigh = -1;
  for (let i = 0; i < 6016; i++) {
    const low = hdrBucketLow(i);
    const high = hdrBucketHigh(i);
    assertEquals(low, previousHigh + 1, `bucket ${i} starts where ${i - 1} ended`);
    assertEquals(hdrBucketIndex(low), i);
    assertEquals(hdrBucketIndex(high), i);
    if (low >= 256) assertOk((high - low + 1) / low <= 1 / 128);
    previousHigh = high;
  }
  assertEquals(previousHigh, Number.MAX_SAFE_INTEGER);
  for (const v of [255, 256, 257, 511, 512, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 12345]) {
    const i = hdrBucketIndex(v);
    assertOk(hdrBucketLow(i) <= v && v <= hdrBucketHigh(i), `value ${v}`);
  }
});

Deno.test("hdr histogram: exact below 256, within 1% from microseconds to minutes", () => {
  const h = new HdrHistogram("us");
  for (let v = 1; v <= 100; v++) h.record(v);
  assertEquals(h.percentile(50), 50);
  assertEquals(h.percentile(99), 99);
  assertEquals(h.percentile(100), 100);
  assertEquals(h.min, 1);
  assertEquals(h.mean, 50.5);
  for (const v of [1_000, 123_457, 60_000_000, 300_000_000]) {
    const one = new HdrHistogram("us");
    one.record(v);
    one.record(v * 3); // so the percentile is not clamped to the exact extremes
    const got = one.percentile(50);
    assertOk(got >= v && (got - v) / v <= 0.01, `${v} -> ${got}`);
  }
});

Deno.test("hdr histogram: merge equals one histogram over the same values; JSON round trip", () => {
  const all = new HdrHistogram("ns");
  const a = new HdrHistogram("ns");
  const b = new HdrHistogram("ns");
  let x = 12345;
  for (let i = 0; i < 10_000; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const v = x % 5_000_000;
    all.record(v);
    (i % 3 === 0 ? a : b).record(v);
  }
  const merged = HdrHistogram.fromJSON(JSON.parse(JSON.stringify(a.toJSON())))
    .merge(HdrHistogram.fromJSON(JSON.parse(JSON.stringify(b.toJSON()))));
  assertEquals(merged.toJSON(), all.toJSON());
  assertEquals(merged.summary(), all.summary());
  assertThrows(() => a.merge(new HdrHistogram("us")), RangeError, "different units");
  assertThrows(
    () => HdrHistogram.fromJSON({ ...a.toJSON(), count: 1 }),
    TypeError,
    "count says 1",
  );
});

Deno.test("hdr histogram: empty, negative and NaN values", () => {
  const h = new HdrHistogram();
  assertEquals(Number.isNaN(h.percentile(50)), true);
  assertEquals(h.toJSON(), { unit: "us", count: 0, sum: 0, min: null, max: null, buckets: [] });
  h.record(-5);
  h.record(NaN);
  assertEquals(h.max, 0);
  assertEquals(h.count, 2);
});
