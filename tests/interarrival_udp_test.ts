import { assertEquals, assertOk } from "./_assert.ts";
import { clientTo, entry, loopbackReceiver } from "./_interarrival.ts";
import { cdf, parseDistribution } from "../interarrival/distributions.ts";
import { sizeSpec } from "../interarrival/sizes.ts";
import { encodeMessage, HEADER_SIZE } from "../interarrival/protocol.ts";
import { ksTest } from "../interarrival/fit.ts";
import { runCheck } from "../interarrival/check.ts";

// Deno's API reads one datagram per async op into the default socket buffer (~200 KB):
// under a loaded machine it drops datagrams at rates the FFI engine (32 MiB) takes, so
// it gets a gentler stream. Either way every datagram must be counted.
const STREAMS = {
  auto: { perFlow: 1000, rate: 2000, size: [1000, 150] },
  deno: { perFlow: 300, rate: 200, size: [300, 40] },
};

for (const engine of ["auto", "deno"] as const) {
  const { perFlow, rate, size } = STREAMS[engine];
  Deno.test(`interarrival udp [${engine === "auto" ? "FFI" : "Deno API"}]: every datagram counted per flow, sizes follow --size-dist (KS)`, async () => {
    const receiver = await loopbackReceiver({
      protocol: "udp",
      udpEngine: engine,
      keepSamples: true,
    });
    const sizeDist = parseDistribution("normal", size);
    let client;
    try {
      client = await clientTo(receiver.port, {
        workers: 2,
        intervals: perFlow - 1,
        dist: parseDistribution("c", [rate]),
        sizeDist,
        seed: 5,
        protocol: "udp",
        udpEngine: engine,
      });
      // Datagrams have no close: wait until all are in (bounded).
      for (let i = 0; i < 200 && receiver.collector.messages < 2 * perFlow; i++) {
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    } finally {
      const { summary, datagrams } = await receiver.stop();
      assertEquals(summary.udpEngine, engine === "auto" ? "recvmmsg (FFI)" : "Deno.listenDatagram");
      assertEquals([summary.messages, summary.lost, summary.duplicates], [2 * perFlow, 0, 0]);
      assertEquals(summary.connections, 0);
      assertEquals(summary.clocks, "shared");
      assertEquals(summary.flows.map((f) => [f.flow, f.messages, f.highestSequence]), [
        [1, perFlow, perFlow - 1],
        [2, perFlow, perFlow - 1],
      ]);
      // Every flow measured its delays. Sender (a Web Worker) and receiver stamp with their own
      // isolate's time origin, taken from the wall clock when each started: a clock adjustment
      // between the two starts shifts every delay alike (seen once: a small negative minimum).
      assertOk(
        summary.flows.every((f) => f.delay !== null && f.delay.min > -5),
        JSON.stringify(summary.flows.map((f) => f.delay)),
      );
      // The sizes the server measured are the sizes drawn, and follow the distribution.
      const sizes = datagrams.map((d) => d.bytes);
      const model = cdf(sizeSpec(sizeDist));
      const ks = ksTest(sizes, (x) => model(x + 0.5));
      assertOk(ks.pValue > 0.001, `KS on sizes: p ${ks.pValue}`);
      assertEquals(summary.bytes, client!.overall.bytes);
    }
    assertEquals(client.overall.sendErrors, 0);
    assertEquals(client.perWorker.map((w) => w.protocol), ["udp", "udp"]);
  });
}

Deno.test("interarrival udp: datagrams that are not messages are counted, not measured", async () => {
  const receiver = await loopbackReceiver({ protocol: "udp" });
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: receiver.port };
    await socket.send(new TextEncoder().encode("hello"), to);
    const wrongLength = encodeMessage({ flags: 0, length: 100, flow: 1, sequence: 0, sentUs: 0 });
    await socket.send(wrongLength.subarray(0, 99), to);
    await socket.send(
      encodeMessage({ flags: 0, length: HEADER_SIZE, flow: 9, sequence: 4, sentUs: 0 }),
      to,
    );
    for (let i = 0; i < 200 && receiver.collector.messages < 1; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  } finally {
    socket.close();
    const { summary } = await receiver.stop();
    assertEquals([summary.messages, summary.invalidDatagrams], [1, 2]);
    // The first message seen is sequence 4: 0 to 3 are lost.
    assertEquals(summary.flows[0].lostRanges, [[0, 3]]);
    // A send time of 0 is a separate clock, and the delay says so by its size.
    assertOk(summary.delay.min > 1e9);
  }
});

Deno.test("interarrival client: -t stops each flow at its duration, -b paces by the drawn sizes", async () => {
  const receiver = await loopbackReceiver({ keepSamples: true });
  try {
    // 200 messages/s for 0.5 s: deadlines 0, 5, ..., 495 ms: exactly 100 messages.
    const timed = await clientTo(receiver.port, {
      intervals: 1_000_000,
      durationMs: 500,
      dist: parseDistribution("c", [200]),
    });
    assertEquals(timed.overall.messages, 100);
    // 80 kbit/s with 100-byte messages: a gap of 10 ms each, 50 messages in 0.5 s.
    const paced = await clientTo(receiver.port, {
      intervals: 1_000_000,
      durationMs: 500,
      bitrate: 80_000,
      sizeDist: parseDistribution("constant", [100]),
      dist: parseDistribution("e", [1]),
    });
    assertEquals([paced.overall.messages, paced.overall.bytes], [50, 5000]);
    assertOk(paced.senders[0].requested.every((gap) => gap === 10));
    // With drawn sizes the gaps follow them: gap = size × 8 / bitrate.
    const drawn = await clientTo(receiver.port, {
      intervals: 30,
      bitrate: 1_000_000,
      sizeDist: parseDistribution("uniform", [2000]),
      dist: parseDistribution("e", [1]),
      seed: 3,
    });
    const s = drawn.senders[0];
    assertEquals(s.requested, s.sizes.slice(0, -1).map((size) => (size * 8) / 1000));
    await receiver.collector.whenClosed(3);
  } finally {
    const { summary } = await receiver.stop();
    assertEquals(summary.messages, 181);
    assertEquals(summary.flows.map((f) => [f.messages, f.lost]), [[100, 0], [50, 0], [31, 0]]);
    assertEquals(summary.flows[1].bytes, 5000);
  }
});

Deno.test("interarrival check --protocol udp: every datagram counted, fits on receive and carried times", async () => {
  const dist = parseDistribution("e", [200]);
  const result = await runCheck({
    dist,
    intervals: 300,
    workers: 1,
    mode: "async",
    protocol: "udp",
    seed: 11,
    entry,
  });
  assertEquals([result.protocol, result.sent, result.received], ["udp", 301, 301]);
  assertEquals([result.fit.n, result.carriedFit.n, result.clientFit.n], [300, 300, 300]);
  // The server reads the send times the client stamped (just before building each
  // batch; the client's own gaps are taken just before each write): the means agree
  // within the time a build takes, over 300 gaps.
  assertEquals(result.carriedFit.expectedMean, 5);
  const difference = Math.abs(result.carriedFit.measuredMean - result.clientFit.measuredMean);
  assertOk(difference < 0.1, `carried vs client mean gap: ${difference} ms apart`);
  assertEquals(result.server.lost, 0);
});
