import { assertEquals, assertThrows } from "./_assert.ts";
import {
  bumpCounter,
  MAX_SIZE,
  newMessage,
  readCounter,
  stampCounter,
  touchAll,
} from "../ipcbench/message.ts";
import { parsePins, parseSizes } from "../ipcbench/parse.ts";
import { parseTransports, sizeSkipReason, TRANSPORT_NAMES } from "../ipcbench/transports.ts";
import { parseCpuList, pinCpus, pressureWindow } from "../ipcbench/system.ts";
import { runMarks } from "../ipcbench/measure.ts";
import { roundTripsFor, skipReason } from "../ipcbench/bench.ts";
import { publishedTable, studyScalePlan } from "../ipcbench/study_plans.ts";
import { UsageError } from "../shared/errors.ts";

Deno.test("ipcbench message: the counter sits at the head and the tail", () => {
  const message = newMessage(16, 0x01020304);
  assertEquals([...message.subarray(0, 4)], [4, 3, 2, 1]);
  assertEquals([...message.subarray(12)], [4, 3, 2, 1]);
  assertEquals(readCounter(message, 16), 0x01020304);
  assertEquals(bumpCounter(message, 16), 0x01020305);
  assertEquals(readCounter(message, 16), 0x01020305);
  const small = newMessage(4, 7);
  assertEquals(bumpCounter(small, 4), 8);
  stampCounter(small, 0xffffffff);
  assertEquals(bumpCounter(small, 4), 0);
});

Deno.test("ipcbench message: a torn or resized message is an error, never a value", () => {
  const message = newMessage(64, 9);
  message[60] = 0;
  assertThrows(() => readCounter(message, 64), RangeError, "9 at the head but");
  assertThrows(() => readCounter(newMessage(8, 1), 64), RangeError, "8 bytes where 64");
  assertThrows(() => newMessage(3, 1), RangeError, "outside 4..");
  assertThrows(() => newMessage(MAX_SIZE + 1, 1), RangeError, "outside 4..");
});

Deno.test("ipcbench message: touchAll reads every byte", () => {
  const bytes = new Uint8Array(10).fill(1);
  assertEquals(touchAll(bytes), 0x01010101 * 2 + 2);
  assertEquals(touchAll(bytes.subarray(1)), 9);
});

Deno.test("ipcbench options: sizes, pins and transports name the bad value", () => {
  assertEquals(parseSizes("4,64,4k,1m,64"), [4, 64, 4096, 1048576]);
  assertThrows(() => parseSizes("3"), UsageError, "Invalid --sizes '3'");
  assertThrows(() => parseSizes("64,abc"), UsageError, "Invalid --sizes 'abc'");
  assertThrows(() => parseSizes("65m"), UsageError, "Invalid --sizes '65m'");
  assertThrows(() => parseSizes(" , "), UsageError, "the list is empty");
  assertEquals(parsePins("same,split"), ["same", "split"]);
  assertEquals(parsePins("all"), ["same", "split", "none"]);
  assertThrows(() => parsePins("both"), UsageError, "Invalid --pin 'both'");
  assertEquals(parseTransports("all"), TRANSPORT_NAMES);
  assertEquals(parseTransports("tcp, UNIX,tcp"), ["tcp", "unix"]);
  assertThrows(() => parseTransports("tcp,carrier-pigeon"), UsageError, "'carrier-pigeon'");
  assertEquals(parseTransports("udp"), ["udp"]);
  assertEquals(sizeSkipReason("udp", 65507), null);
  assertEquals(
    sizeSkipReason("udp", 65536),
    "a UDP datagram carries at most 65507 bytes, not 65536",
  );
  assertEquals(sizeSkipReason("tcp", 1 << 20), null);
});

Deno.test("ipcbench plan: round trips capped by bytes, run marks, placements", () => {
  assertEquals(roundTripsFor(64, 10000, 256 << 20), 10000);
  assertEquals(roundTripsFor(1 << 20, 10000, 256 << 20), 256);
  assertEquals(roundTripsFor(64 << 20, 10000, 1), 1);
  const plan = {
    transport: "tcp" as const,
    size: 64,
    roundTrips: 100,
    warmup: 10,
    runs: 3,
    pin: "none" as const,
    timeoutMs: 1000,
  };
  assertEquals(runMarks(plan), [0, 100, 200, 300]);
  // The spinning transport runs a clock-free pass after each timed one.
  assertEquals(runMarks({ ...plan, transport: "sab-spin" }), [0, 200, 400, 600]);
  assertEquals(pinCpus("none", [0, 1]), {});
  assertEquals(pinCpus("same", [2, 3]), { pinger: "2", echo: "2" });
  assertEquals(pinCpus("split", [2, 3]), { pinger: "2", echo: "3" });
  assertThrows(() => pinCpus("split", [0]), Error, "needs two CPUs");
  assertEquals(parseCpuList("0-2,5"), [0, 1, 2, 5]);
  assertEquals(skipReason("sab-spin", "same", [0, 1])?.includes("spinning"), true);
  assertEquals(skipReason("tcp", "split", [0]), "--pin split needs two CPUs");
  assertEquals(skipReason("tcp", "same", [0]), null);
});

Deno.test("ipcbench pressure: stall share of a run from two PSI readings", () => {
  const window = pressureWindow({ avg10: 1, totalUs: 1000 }, { avg10: 2, totalUs: 21000 }, 100);
  assertEquals(window.stallPct, 20);
  assertEquals(pressureWindow(null, null, 100).stallPct, null);
});

Deno.test("ipcbench study: the published table and the scale presets", () => {
  assertEquals(publishedTable().rows, [[1, 3479, 11431], [2, 3442, 8650], [3, 2857, 8650]]);
  assertEquals(studyScalePlan("full").studyRoundTrips, 10000);
  assertEquals(studyScalePlan("full").repeats, 3);
  assertEquals(studyScalePlan("smoke").matrix.pins, ["none"]);
});
