import { assertEquals, assertOk, assertThrows } from "./_assert.ts";
import { UsageError } from "../shared/errors.ts";
import {
  cdf,
  describeDistribution,
  moments,
  parseDistribution,
  sampler,
  seededRandom,
  workerSeed,
} from "../interarrival/distributions.ts";
import { fitGaps, kolmogorovQ, ksTest } from "../interarrival/fit.ts";
import { describeSizes } from "../interarrival/sizes.ts";
import { formatEvent, formatSentence, parseEvent } from "../interarrival/protocol.ts";
import { ReceiverCollector, SEQUENTIAL_NOTE, summarizeReceiver } from "../interarrival/server.ts";

Deno.test("interarrival distributions: bad parameters are usage errors naming the value", () => {
  assertThrows(
    () => parseDistribution("e", [-5]),
    UsageError,
    "must be > 0 for exponential, got -5",
  );
  assertThrows(() => parseDistribution("u", [0]), UsageError, "must be > 0 for uniform, got 0");
  assertThrows(() => parseDistribution("d", [-1]), UsageError, "got -1");
  assertThrows(() => parseDistribution("zipf", [1]), UsageError, "Unknown distribution 'zipf'");
  assertThrows(() => parseDistribution("e", []), UsageError, "takes 1 --param value");
  assertThrows(() => parseDistribution("gamma", [1]), UsageError, "takes 2 --param values");
  assertEquals(parseDistribution("E", [2]), { name: "exponential", params: [2] });
  assertEquals(parseDistribution("w", [1.5, 0.01]).name, "weibull");
});

Deno.test("interarrival distributions: a seed gives the same gaps, each worker its own", () => {
  const spec = parseDistribution("e", [100]);
  const draw = (seed: number, worker: number) => {
    const next = sampler(spec, seededRandom(workerSeed(seed, worker)));
    return Array.from({ length: 5 }, next);
  };
  assertEquals(draw(7, 1), draw(7, 1));
  assertOk(draw(7, 1)[0] !== draw(7, 2)[0]);
  assertOk(draw(7, 1)[0] !== draw(8, 1)[0]);
});

Deno.test("interarrival distributions: sample means and KS agree with the model for every kind", () => {
  const specs = [
    parseDistribution("d", [0.01]),
    parseDistribution("c", [250]),
    parseDistribution("u", [0.02]),
    parseDistribution("e", [100]),
    parseDistribution("normal", [0.01, 0.003]),
    parseDistribution("pareto", [0.005, 3]),
    parseDistribution("gamma", [2, 0.005]),
    parseDistribution("gamma", [0.5, 0.01]),
    parseDistribution("weibull", [1.5, 0.01]),
    parseDistribution("poisson", [0.01]),
  ];
  for (const spec of specs) {
    const next = sampler(spec, seededRandom(12345));
    const samples = Array.from({ length: 20_000 }, next);
    const fit = fitGaps(samples, spec);
    const expected = moments(spec);
    assertOk(
      Math.abs(fit.measuredMean - expected.mean) / expected.mean < 0.03,
      `${spec.name}: mean ${fit.measuredMean} vs ${expected.mean}`,
    );
    assertOk(fit.passed, `${spec.name}: ${fit.verdict}`);
  }
  // Cauchy has no mean: only the KS test applies.
  const cauchy = parseDistribution("cauchy", [0.01, 0.002]);
  const next = sampler(cauchy, seededRandom(99));
  assertOk(ksTest(Array.from({ length: 5000 }, next), cdf(cauchy)).pValue > 0.01);
});

Deno.test("interarrival fit: KS rejects the wrong distribution and Q matches its table", () => {
  assertEquals(Number(kolmogorovQ(1).toFixed(4)), 0.27);
  assertEquals(Number(kolmogorovQ(1.63).toFixed(3)), 0.01);
  const uniform = sampler(parseDistribution("u", [0.02]), seededRandom(5));
  const fit = fitGaps(Array.from({ length: 2000 }, uniform), parseDistribution("e", [100]));
  assertEquals(fit.passed, false);
  assertOk(fit.ks!.pValue < 1e-6);
  // Point masses skip KS and judge the mean.
  const fixed = fitGaps([10.002, 9.998, 10.001], parseDistribution("d", [0.01]));
  assertEquals([fixed.ks, fixed.passed], [null, true]);
});

Deno.test("interarrival protocol: events round-trip and verbose lines read like the study", () => {
  const line = formatEvent(3, 17, 1768823258707.5);
  assertEquals(line, "Worker 3, Event 17, Timestamp 1768823258707.500");
  assertEquals(parseEvent(line), { worker: 3, event: 17, timestamp: 1768823258707.5 });
  assertEquals(parseEvent("Worker 1 Event 1, Timestamp 1768823258707")?.event, 1);
  assertEquals(parseEvent("hello"), null);
  assertEquals(
    formatSentence("Worker 1, Event 2", "127.0.0.1:58179"),
    'Sentence "Worker 1, Event 2" received from 127.0.0.1:58179',
  );
});

Deno.test("interarrival collector: past maxRecords connections are counted, not listed", () => {
  const collector = new ReceiverCollector({}, { maxRecords: 2, maxFlows: 3 });
  const bad = [0, 0, 1, 0, 2];
  for (let c = 1; c <= 5; c++) {
    collector.add({ k: "open", c, at: 100 + 10 * c, remote: `r${c}`, where: "w" }, { worker: 0 });
    collector.add({
      k: "data",
      c,
      at: [101 + 10 * c],
      len: [10],
      flow: [c],
      seq: [0],
      sent: [100 + 10 * c],
      binary: true,
      bad: bad[c - 1],
    }, { worker: 0 });
    // Connections 1-4 close (4 left a line unterminated); 5 stays open.
    if (c < 5) {
      collector.add(
        { k: "close", c, at: 105 + 10 * c, reason: c % 2 ? "eof" : "reset", unterminated: c === 4 },
        { worker: 0 },
      );
    }
  }
  assertEquals(collector.connections().map((c) => c.id), [1, 2]);
  assertEquals(collector.connectionCounts(), {
    accepted: 5,
    closeReasons: { eof: 2, reset: 2, open: 1 },
    invalidUtf8: 3,
    unterminated: 1,
  });
  // Flows 1-3 tracked (the third one's connection unlisted), 4-5 in "other".
  assertEquals(collector.flows().map((f) => [f.flow, f.messages]), [
    [1, 1],
    [2, 1],
    [3, 1],
    [null, 2],
  ]);
  const summary = summarizeReceiver(collector, "async", false);
  assertEquals([summary.connections, summary.messages, summary.invalidUtf8], [5, 5, 3]);
  assertEquals(summary.averageConnectionInterarrivalMs, 10);
});

Deno.test("interarrival collector: events from several workers merge into exact summaries", () => {
  const collector = new ReceiverCollector({}, { keepSamples: true });
  const open = (c: number, at: number) => ({ k: "open", c, at, remote: `r${c}`, where: "w" });
  const none = (at: number[]) => at.map(() => -1);
  const data = (c: number, at: number[]) => ({
    k: "data",
    c,
    at,
    len: at.map(() => 10),
    flow: none(at),
    seq: none(at),
    sent: none(at),
    binary: false,
    bad: 0,
  });
  // Worker 0 accepted at 100 and 130, worker 1 at 110: connection gaps 10 and 20.
  collector.add(open(1, 100), { worker: 0 });
  collector.add(open(1, 110), { worker: 1 });
  collector.add(data(1, [101, 103]), { worker: 0 });
  collector.add(data(1, [111, 115, 121]), { worker: 1 });
  collector.add(open(2, 130), { worker: 0 });
  collector.add(data(2, [131]), { worker: 0 });
  collector.add({ k: "close", c: 1, at: 140, reason: "eof", unterminated: false }, { worker: 0 });
  collector.add({ k: "close", c: 1, at: 141, reason: "reset", unterminated: true }, { worker: 1 });
  assertEquals(collector.closed, 2);
  const connections = collector.connections();
  assertEquals(connections.map((c) => [c.id, c.remote, c.messages]), [
    [1, "r1", 2],
    [2, "r1", 3],
    [3, "r2", 1],
  ]);
  assertEquals(connections[1].samples.map((s) => s.gapMs), [null, 4, 6]);
  const summary = summarizeReceiver(collector, "sequential", false);
  assertEquals(summary.connections, 3);
  assertEquals(summary.messages, 6);
  assertEquals(summary.bytes, 60);
  assertEquals(summary.averageConnectionInterarrivalMs, 15);
  assertEquals(summary.averageDataInterarrivalMs, 4);
  assertEquals([summary.dataInterarrival.count, summary.dataInterarrival.min], [3, 2]);
  assertEquals(summary.closeReasons, { eof: 1, reset: 1, open: 1 });
  assertEquals(summary.unterminated, 1);
  assertEquals(summary.note, SEQUENTIAL_NOTE);
});

Deno.test("interarrival describeDistribution: gaps in seconds, sizes in bytes", () => {
  const d = (name: string, params: number[]) => parseDistribution(name, params);
  assertEquals(
    [d("d", [0.5]), d("c", [100]), d("e", [10]), d("poisson", [0.2]), d("n", [1, 0.1])].map((s) =>
      describeDistribution(s)
    ),
    [
      "deterministic(T=0.5 s)",
      "constant(rate=100/s)",
      "exponential(λ=10/s)",
      "poisson(mean=0.2 s, 1 ms steps)",
      "normal(μ=1 s, σ=0.1 s)",
    ],
  );
  assertEquals(
    [d("d", [64]), d("c", [64]), d("e", [500]), d("poisson", [300]), d("weibull", [2, 400])].map(
      describeSizes,
    ),
    [
      "constant(64 B)",
      "constant(64 B)",
      "exponential(mean 500 B)",
      "poisson(mean 300 B)",
      "weibull(k=2, λ=400 B)",
    ],
  );
});
