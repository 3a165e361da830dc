import { assertEquals, assertOk, assertThrows } from "./_assert.ts";
import { UsageError } from "../shared/errors.ts";
import {
  decodeHeader,
  encodeHeader,
  encodeMessage,
  FLAG_LAST,
  HEADER_SIZE,
  LineScanner,
  MessageSplitter,
  SEQUENCE_LOW_OFFSET,
} from "../interarrival/protocol.ts";
import { JitterEstimator, SequenceTracker } from "../interarrival/flow_stats.ts";
import { type FlowSettings, parseBitrate, parseFlowScript } from "../interarrival/flows.ts";
import { decodeMessages, parseInterval } from "../interarrival/decode.ts";
import { parseLogLine } from "../interarrival/sample_log.ts";
import { cdf, parseDistribution } from "../interarrival/distributions.ts";
import { sizeSpec } from "../interarrival/sizes.ts";
import { sizeDrawer } from "../interarrival/sizes.ts";
import { ksTest } from "../interarrival/fit.ts";

Deno.test("interarrival header: every field round-trips, big-endian, 64-bit sequence and time", () => {
  const header = {
    flags: FLAG_LAST,
    length: 1500,
    flow: 0xfffffffe,
    sequence: 2 ** 40 + 12345,
    sentUs: 1_764_300_000_123_456,
  };
  const bytes = encodeMessage(header);
  assertEquals(bytes.length, 1500);
  assertEquals(decodeHeader(bytes), header);
  // The sequence's low 32 bits sit at byte 16, where a packet filter can match them.
  const view = new DataView(bytes.buffer);
  assertEquals(view.getUint32(SEQUENCE_LOW_OFFSET), 12345);
  assertEquals(Array.from(bytes.subarray(0, 8)), [0xa7, 1, 0, 1, 0, 0, 0x05, 0xdc]);
  // The padding after the header is zeros.
  assertOk(bytes.subarray(HEADER_SIZE).every((b) => b === 0));
  // A message shorter than the header still carries a whole header.
  assertEquals(encodeMessage({ ...header, length: 5 }).length, HEADER_SIZE);
});

Deno.test("interarrival header: bad bytes say what is wrong", () => {
  const ok = encodeMessage({ flags: 0, length: 64, flow: 1, sequence: 0, sentUs: 0 });
  assertEquals(decodeHeader(ok.subarray(0, 27)), "short");
  const magic = ok.slice();
  magic[0] = 0x57;
  assertEquals(decodeHeader(magic), "magic");
  const version = ok.slice();
  version[1] = 9;
  assertEquals(decodeHeader(version), "version");
  assertEquals(decodeHeader(ok, 0, 63), "length");
  const tiny = ok.slice();
  new DataView(tiny.buffer).setUint32(4, 27);
  assertEquals(decodeHeader(tiny), "length");
});

Deno.test("interarrival splitter: messages cut out of any split of the stream, memory one header", () => {
  const sizes = [28, 29, 100, 4096, 64];
  const messages = sizes.map((length, i) =>
    encodeMessage({ flags: 0, length, flow: 7, sequence: i, sentUs: 1000 + i })
  );
  const stream = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
  let offset = 0;
  for (const m of messages) {
    stream.set(m, offset);
    offset += m.length;
  }
  for (const step of [1, 3, 27, 28, 500, stream.length]) {
    const splitter = new MessageSplitter(65536);
    const out = [];
    for (let i = 0; i < stream.length; i += step) {
      out.push(...splitter.push(stream.subarray(i, i + step)));
    }
    assertEquals(out.map((m) => ("error" in m ? -1 : m.sequence)), [0, 1, 2, 3, 4], `step ${step}`);
    assertEquals(out.map((m) => ("error" in m ? -1 : m.length)), sizes);
    assertEquals(splitter.pending, 0);
  }
  // An announced length beyond the cap is refused at its header, before any padding.
  const splitter = new MessageSplitter(1000);
  const [error] = splitter.push(messages[3].subarray(0, HEADER_SIZE));
  assertEquals(error, {
    error: "length",
    detail: "a message announcing 4096 bytes, outside 28..1000",
  });
  assertEquals(splitter.push(messages[0]), []);
});

Deno.test("interarrival sequences: loss names the missing numbers, reordering and duplicates exact", () => {
  const t = new SequenceTracker(0);
  const arrivals = [0, 1, 2, 5, 6, 3, 6, 10, 4, 11, 1, 15].map((s) => t.add(s));
  assertEquals(arrivals, [
    "in-order",
    "in-order",
    "in-order",
    "in-order",
    "in-order",
    "reordered",
    "duplicate",
    "in-order",
    "reordered",
    "in-order",
    "duplicate",
    "in-order",
  ]);
  assertEquals([t.lost, t.duplicates, t.reordered, t.received], [6, 2, 2, 10]);
  assertEquals(t.lostRanges(), { ranges: [[7, 9], [12, 14]], complete: true });
  // Filling the middle of a range splits it.
  t.add(8);
  assertEquals(t.lostRanges().ranges, [[7, 7], [9, 9], [12, 14]]);
  // Losses at the start count from the first sequence number (0).
  const late = new SequenceTracker(0);
  late.add(3);
  assertEquals([late.lost, late.lostRanges().ranges], [3, [[0, 2]]]);
});

Deno.test("interarrival sequences: holes are capped; older ones are closed as lost, late arrivals counted", () => {
  const t = new SequenceTracker(0, { maxHoles: 3, maxListed: 2 });
  for (let s = 0; s < 20; s += 2) t.add(s); // holes at 1, 3, ..., 17
  assertEquals(t.lost, 9);
  const listed = t.lostRanges();
  assertEquals([listed.ranges, listed.complete], [[[1, 1], [3, 3]], false]);
  assertEquals(t.add(1), "late");
  assertEquals(t.add(17), "reordered");
  assertEquals([t.lost, t.late, t.reordered], [8, 1, 1]);
});

Deno.test("interarrival jitter: RFC 3550 estimate, J += (|D| − J)/16", () => {
  const j = new JitterEstimator();
  assertEquals(j.add(0, 10), 0);
  assertEquals(j.add(10, 20), 0);
  assertEquals(j.add(20, 46), 1); // D = 26 − 10 = 16
  assertEquals(j.add(30, 46), 1 + (10 - 1) / 16); // D = 0 − 10
});

const DEFAULTS: FlowSettings = {
  host: "127.0.0.1",
  port: 55000,
  protocol: "tcp",
  dist: parseDistribution("e", [100]),
  sizeDist: null,
  bitrate: null,
  intervals: 10,
  durationMs: null,
  startDelayMs: 0,
};

Deno.test("interarrival flows: one flow per script line over the command line's settings", () => {
  const flows = parseFlowScript(
    [
      "# a comment line",
      "-s 10.0.0.2 -P 9000 --protocol udp -C 1000 --size-dist normal --size-param 512 --size-param 64 -t 5",
      "",
      "-d pareto -p 0.001 -p 2 -n 99 --delay 1.5 -b 2M   # trailing comment",
    ].join("\n"),
    DEFAULTS,
  );
  assertEquals(flows, [
    {
      ...DEFAULTS,
      host: "10.0.0.2",
      port: 9000,
      protocol: "udp",
      dist: { name: "constant", params: [1000] },
      sizeDist: { name: "normal", params: [512, 64] },
      durationMs: 5000,
      // A duration without -n runs for the duration.
      intervals: 100_000_000,
    },
    {
      ...DEFAULTS,
      dist: { name: "pareto", params: [0.001, 2] },
      intervals: 99,
      startDelayMs: 1500,
      bitrate: 2_000_000,
    },
  ]);
  assertThrows(() => parseFlowScript("-x 1", DEFAULTS), UsageError, "line 1: unknown option '-x'");
  assertThrows(() => parseFlowScript("-P", DEFAULTS), UsageError, "-P needs a value");
  assertThrows(
    () => parseFlowScript("--protocol sctp", DEFAULTS),
    UsageError,
    "expected tcp or udp",
  );
  assertThrows(() => parseFlowScript("# nothing\n", DEFAULTS), UsageError, "holds no flow");
  assertThrows(() => parseFlowScript("-d e -p -1", DEFAULTS), UsageError, "must be > 0");
});

Deno.test("interarrival flows: bitrates and intervals parse with units", () => {
  assertEquals([parseBitrate("10M"), parseBitrate("512k"), parseBitrate("64000")], [
    10_000_000,
    512_000,
    64_000,
  ]);
  assertEquals(parseBitrate("1.5G"), 1.5e9);
  assertThrows(() => parseBitrate("fast"), UsageError, "Invalid --bitrate 'fast'");
  assertThrows(() => parseBitrate("0"), UsageError, "Invalid --bitrate");
  assertEquals([parseInterval("1s"), parseInterval("250ms"), parseInterval("0.5")], [
    1000,
    250,
    500,
  ]);
  assertOk(Number.isNaN(parseInterval("1h")));
});

Deno.test("interarrival sizes: drawn sizes follow the size distribution (KS), in bytes", () => {
  for (
    const spec of [
      parseDistribution("normal", [1000, 150]),
      parseDistribution("pareto", [2000, 3]),
      parseDistribution("gamma", [9, 100]),
      parseDistribution("weibull", [2, 800]),
    ]
  ) {
    const draw = sizeDrawer(spec, 42, 65_507);
    const sizes = Array.from({ length: 20_000 }, draw);
    assertOk(sizes.every((s) => Number.isInteger(s) && s >= HEADER_SIZE));
    // Sizes are whole bytes: round(x) ≤ k when x < k + 0.5. Each byte holds little
    // mass (< 0.3 %) in these distributions, so the steps do not trouble KS.
    const model = cdf(sizeSpec(spec));
    const ks = ksTest(sizes, (x) => model(x + 0.5));
    assertOk(ks.pValue > 0.001, `${spec.name}: KS p ${ks.pValue}`);
  }
  const constant = sizeDrawer(parseDistribution("constant", [1200]), 1, 65_507);
  assertEquals([constant(), constant()], [1200, 1200]);
  const exponential = sizeDrawer(parseDistribution("e", [500]), 1, 65_507);
  const mean = Array.from({ length: 50_000 }, exponential).reduce((a, b) => a + b) / 50_000;
  // Mean 500 B, a little more since sizes below the 28-byte header are raised to it.
  assertOk(mean > 495 && mean < 515, `mean ${mean}`);
  // Drawn sizes never exceed the cap (a UDP datagram's payload).
  const big = sizeDrawer(parseDistribution("constant", [100_000]), 1, 65_507);
  assertEquals(big(), 65_507);
});

Deno.test("interarrival decode: a constructed log gives the known series", async () => {
  const rows = [
    [0, 995, 1000],
    [1, 1005, 1010],
    [3, 1025, 1040],
    [2, 1015, 2000], // late: fills the gap at 2
    [3, 1025, 2100], // duplicate
    [5, 2495, 2500], // 4 is lost
  ];
  const lines = [
    "kind,connection,sequence,remote,time_epoch_ms,interarrival_ms,bytes,flow,flow_sequence,sent_epoch_ms,delay_ms",
    ...rows.map(([seq, sent, at], i) =>
      `data,,${i + 1},10.0.0.1:5000,${at}.000,,100,1,${seq},${sent}.000,${at - sent}`
    ),
  ];
  const messages = lines.map((line, i) => parseLogLine(line, i + 1)).filter((m) => m !== null);
  const result = await decodeMessages(messages, 1000);
  assertEquals(result.messages, 6);
  assertEquals(result.rows, [
    {
      startS: 0,
      packets: 3,
      bytes: 300,
      bitrateBps: 2400,
      packetRate: 3,
      delayMinMs: 5,
      delayMeanMs: 8.333,
      delayMaxMs: 15,
      jitterMs: 0.208,
      lost: 1,
      duplicates: 0,
      reordered: 0,
    },
    {
      startS: 1,
      packets: 3,
      bytes: 300,
      bitrateBps: 2400,
      packetRate: 3,
      delayMinMs: 5,
      delayMeanMs: 688.333,
      delayMaxMs: 1075,
      jitterMs: 83.389,
      lost: 0,
      duplicates: 1,
      reordered: 1,
    },
  ]);
  const [flow] = result.flows;
  assertEquals([flow.flow, flow.messages, flow.lost, flow.duplicates, flow.reordered], [
    1,
    6,
    1,
    1,
    1,
  ]);
  assertEquals(flow.lostRanges, [[4, 4]]);
  assertEquals(flow.jitterMs, 125.947);
  assertEquals(flow.delay, { min: 5, mean: 348.333, max: 1075 });
  assertThrows(() => parseLogLine("data,1,2", 7), Error, "Line 7 is not a sample row");
  // UDP messages count from 0: a log starting at sequence 2 lost 0 and 1. A TCP flow
  // (possibly the study's lines, from 1) counts from its first row.
  const udp = parseLogLine("data,,1,10.0.0.1:5000,5.000,,64,1,2,1.000,4.000", 1)!;
  const tcp = { ...udp, connection: 1 };
  assertEquals((await decodeMessages([udp], 1000)).flows[0].lostRanges, [[0, 1]]);
  assertEquals((await decodeMessages([udp], 1000)).rows[0].lost, 2);
  assertEquals((await decodeMessages([tcp], 1000)).flows[0].lost, 0);
});

Deno.test("interarrival header: encodeHeader writes in place inside a larger buffer", () => {
  const buffer = new Uint8Array(200).fill(0xee);
  encodeHeader(buffer.subarray(50), { flags: 0, length: 100, flow: 3, sequence: 9, sentUs: 77 });
  assertEquals(decodeHeader(buffer, 50), {
    flags: 0,
    length: 100,
    flow: 3,
    sequence: 9,
    sentUs: 77,
  });
  assertEquals(buffer[49], 0xee);
  assertEquals(buffer[78], 0xee); // the padding is left as it was
});

Deno.test("interarrival lines: views of whole lines, copies only of unfinished ones, the cap enforced", () => {
  const seen: string[] = [];
  const scanner = new LineScanner(5);
  const push = (text: string) =>
    scanner.push(
      new TextEncoder().encode(text),
      (line) => seen.push(new TextDecoder().decode(line)),
    );
  assertOk(push("a\nbb\r\n\nc"));
  assertOk(push("cc"));
  assertOk(push("\nxy"));
  assertEquals(seen, ["a", "bb", "", "ccc"]);
  assertEquals(scanner.pending, 2);
  assertEquals(new TextDecoder().decode(scanner.flush()), "xy");
  assertEquals(scanner.flush(), undefined);
  // Five bytes and a \r fit; six do not, finished or not.
  assertOk(push("12345\r\n"));
  assertEquals(push("123456\n"), false);
  assertEquals(new LineScanner(5).push(new Uint8Array(7).fill(0x41), () => {}), false);
});
