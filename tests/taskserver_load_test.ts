/**
 * `taskserver load`: the plan's pure functions (mix, templates, schedule,
 * shares), exact counts against a test server, the exact merge of two
 * generators, and the command line (`--json`, `merge`, `--out`, Ctrl-C).
 * The coordinated-omission test (a server that freezes) is in
 * taskserver_load_freeze_test.ts.
 */
import { assertEquals, assertOk } from "./_assert.ts";
import { runTool } from "./_command.ts";
import {
  expandTemplate,
  mixCycle,
  openLoopCount,
  parseMix,
  parseTarget,
  requestText,
  scheduledAt,
  sharePlan,
  splitEvenly,
} from "../taskserver/load_plan.ts";
import { type LoadOptions, loadOptions, loadPlan, runLoad } from "../taskserver/load.ts";
import { mergeResults } from "../taskserver/load_report.ts";
import { parseDuration } from "../taskserver/load_cli.ts";
import { HdrHistogram } from "../shared/hdr_histogram.ts";
import { loadCommand, spawnTaskserver, startTestServer } from "./_taskserver_load_server.ts";

Deno.test("load plan: --mix parses, and its rotation holds the weights exactly", () => {
  assertEquals(parseMix("1:30,2:30,3:40"), [
    { choice: "1", weight: 30 },
    { choice: "2", weight: 30 },
    { choice: "3", weight: 40 },
  ]);
  assertEquals(parseMix("3"), [{ choice: "3", weight: 1 }]);
  assertEquals(mixCycle(parseMix("1:30,2:30,3:40")), [
    "3",
    "1",
    "2",
    "3",
    "1",
    "2",
    "3",
    "1",
    "2",
    "3",
  ]);
  assertEquals(mixCycle(parseMix("2:1,3:3")), ["3", "2", "3", "3"]);
  for (const bad of ["", "1:0", "1:x", "1:2:3", "1:1,1:2", "a|b:1"]) {
    let message = "";
    try {
      parseMix(bad);
    } catch (error) {
      message = (error as Error).message;
    }
    assertOk(message.startsWith("Invalid --mix"), `'${bad}' must be refused, got '${message}'`);
  }
});

Deno.test("load plan: targets, durations, templates and requests", () => {
  assertEquals(parseTarget("127.0.0.1:65432"), { host: "127.0.0.1", port: 65432 });
  assertEquals(parseTarget("[::1]:80"), { host: "::1", port: 80 });
  assertEquals(parseTarget("example.org:1"), { host: "example.org", port: 1 });
  for (const bad of ["127.0.0.1", "127.0.0.1:0", "host:70000", ":80"]) {
    let message = "";
    try {
      parseTarget(bad);
    } catch (error) {
      message = (error as Error).message;
    }
    assertOk(message.startsWith(`Invalid target '${bad}'`), message);
  }
  assertEquals(parseDuration("10", "--duration"), 10_000);
  assertEquals(parseDuration("500ms", "--duration"), 500);
  assertEquals(parseDuration("1.5s", "--duration"), 1500);
  assertEquals(parseDuration("2m", "--duration"), 120_000);
  assertEquals(expandTemplate("BenchmarkTestString{n}", 42, 7), "BenchmarkTestString42");
  assertEquals(expandTemplate("c{c}-n{n}-{n}", 3, 9), "c9-n3-3");
  const plan = loadPlan(options({ mix: parseMix("1:1,2:1"), payload: "ab{n}" }), 0);
  // Rotation [1, 2]; request n of connection c takes entry (n + c) mod 2.
  assertEquals(requestText(plan, 0, 0), "1|ab0");
  assertEquals(requestText(plan, 1, 0), "2|1+1");
  assertEquals(requestText(plan, 5, 2), "2|5+1");
  assertEquals(requestText({ ...plan, framing: "raw" }, 3, 0), "ab3");
});

Deno.test("load plan: one absolute schedule, shared exactly over connections and workers", () => {
  // 4 connections at 1000 req/s: request n·4 + c is due at (n·4 + c) ms.
  assertEquals(scheduledAt(0, 0, 4, 1000), 0);
  assertEquals(scheduledAt(0, 3, 4, 1000), 3);
  assertEquals(scheduledAt(2, 1, 4, 1000), 9);
  // With a 100 ms warmup at 3000 req/s, 1000 requests spread over 7 connections.
  const counts = Array.from({ length: 7 }, (_, c) => openLoopCount(1000, 100, c, 7, 3000));
  assertEquals(counts, [143, 143, 143, 143, 143, 142, 143]);
  assertEquals(splitEvenly(10, 3), [4, 3, 3]);
  const plan = loadPlan(options({ connections: 5, requests: 1001 }), 0);
  const shares = sharePlan(plan, 2);
  assertEquals(shares.map((s) => s.connectionIds), [[0, 2, 4], [1, 3]]);
  assertEquals(shares.map((s) => s.requests), [501, 500]);
  // Open loop: each connection's count comes from the one schedule of the whole run.
  const open = sharePlan({ ...plan, rate: 1000 }, 2);
  assertEquals(open.map((s) => s.requests), [1001, 1001]);
  assertEquals(
    open.map((s) =>
      s.connectionIds.reduce((sum, c) => sum + openLoopCount(1001, 0, c, 5, 1000), 0)
    ),
    [601, 400],
  );
});

function options(overrides: Partial<LoadOptions> = {}): LoadOptions {
  return loadOptions(1, { connections: 4, ...overrides });
}

Deno.test("load: exact counts, closed and open loop, pipelined, verified", async () => {
  const server = await startTestServer();
  const refusing = await startTestServer({ errorChoice: "2" });
  try {
    const closed = await runLoad(options({ port: server.port, requests: 1000, pipeline: 4 }));
    assertEquals(closed.summary.requests, 1000);
    assertEquals(closed.summary.answered, 1000);
    assertEquals(closed.summary.errors, 0);
    assertEquals(closed.summary.latencyMs.count, 1000);
    assertEquals(closed.measured.timeline.reduce((s, t) => s + t.sent, 0), 1000);
    assertEquals(closed.measured.timeline.reduce((s, t) => s + t.answered, 0), 1000);

    const open = await runLoad(options({
      port: server.port,
      connections: 5,
      rate: 4000,
      requests: 600,
      warmupMs: 100,
      mix: parseMix("1:30,2:30,3:40"),
      payload: "Bench{n}",
      verify: true,
    }));
    assertEquals(open.settings.loop, "open");
    assertEquals(open.summary.requests, 600);
    assertEquals(open.summary.answered, 600);
    assertEquals(open.summary.errors, 0);
    assertEquals(open.measured.lag.count, 600);

    // The same over two generator workers: one schedule, exact counts.
    const shared = await runLoad(options({
      port: server.port,
      connections: 5,
      rate: 4000,
      requests: 600,
      warmupMs: 100,
      workers: 2,
    }));
    assertEquals(shared.measured.generators, 2);
    assertEquals([shared.summary.requests, shared.summary.answered], [600, 600]);
    const closedShared = await runLoad(options({
      port: server.port,
      connections: 3,
      requests: 1001,
      workers: 2,
    }));
    assertEquals([closedShared.summary.requests, closedShared.summary.answered], [1001, 1001]);

    // Choice 2 answered `Error:` by this server: 4 connections × 100 requests
    // over the rotation [3, 2, 3, 3] send exactly 100 of them.
    const errors = await runLoad(options({
      port: refusing.port,
      connections: 4,
      requestsPerConnection: 100,
      mix: parseMix("2:1,3:3"),
    }));
    assertEquals(errors.summary.requests, 400);
    assertEquals(errors.measured.errorReplies, 100);
    assertEquals(errors.summary.errors, 100);
  } finally {
    await server.close();
    await refusing.close();
  }
});

Deno.test("load merge: two generators' histograms merge into exactly one generator's", async () => {
  const server = await startTestServer();
  try {
    // Two generators at once over the same server; every sample also goes into one histogram.
    const combined = new HdrHistogram("us");
    const run = () =>
      runLoad(options({ port: server.port, connections: 3, requests: 900, pipeline: 2 }), {
        onGenerator: (gen) => (gen.onSample = (us) => combined.record(us)),
      });
    const [a, b] = await Promise.all([run(), run()]);
    const merged = mergeResults([a.measured, b.measured]);
    assertEquals(merged.latency, combined.toJSON());
    assertEquals(merged.requests, 1800);
    assertEquals(merged.answered, 1800);
    assertEquals(merged.generators, 2);
    assertEquals(
      merged.timeline.reduce((s, t) => s + t.answered, 0),
      1800,
    );

    // The command merges the files the same way.
    const dir = await Deno.makeTempDir({ prefix: "load-merge-" });
    try {
      const doc = (results: unknown) => JSON.stringify({ tool: "taskserver", results });
      await Deno.writeTextFile(`${dir}/a.json`, doc(a));
      await Deno.writeTextFile(`${dir}/b.json`, doc(b));
      const out = await loadCommand("merge", "--json", `${dir}/a.json`, `${dir}/b.json`);
      assertEquals(out.code, 0, out.stderr);
      const results = JSON.parse(out.stdout).results;
      assertEquals(results.measured.latency, combined.toJSON());
      assertEquals(results.summary.answered, 1800);
      assertEquals(results.settings.connections, 6);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  } finally {
    await server.close();
  }
});

Deno.test("taskserver load: --json, --out, workers, a refused target, usage errors", async () => {
  const server = await startTestServer();
  const dir = await Deno.makeTempDir({ prefix: "load-out-" });
  try {
    const out = await loadCommand(
      `127.0.0.1:${server.port}`,
      "-c 4 -n 400 --workers 2 --json --out",
      dir,
    );
    assertEquals(out.code, 0, out.stderr);
    const doc = JSON.parse(out.stdout);
    assertEquals(doc.error, null);
    assertEquals(doc.results.summary.answered, 400);
    assertEquals(doc.results.measured.generators, 2);
    const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assertEquals(files, [
      "taskserver-load-1.csv",
      "taskserver-load-1.svg",
      "taskserver-load-2.csv",
      "taskserver-load-2.svg",
      "taskserver-load.json",
      "taskserver-load.md",
    ]);
    assertOk(Deno.readTextFileSync(`${dir}/taskserver-load-1.svg`).startsWith("<svg"));
    assertOk(
      Deno.readTextFileSync(`${dir}/taskserver-load-2.csv`).startsWith(
        "Second,Sent,Answered,Errors,p99 (ms)\n",
      ),
    );
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
  // A port nobody listens on (ours, just closed).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const refused = await runTool("taskserver", ["load", `127.0.0.1:${port}`, "-n", "5", "--json"]);
  assertEquals(refused.code, 1);
  const doc = JSON.parse(refused.stdout);
  assertEquals(doc.results, null);
  assertOk(
    String(doc.error).startsWith(`Cannot connect to 127.0.0.1:${port}: `),
    String(doc.error),
  );
  const usage = await runTool("taskserver", ["load", "nohost", "-n", "5"]);
  assertEquals(usage.code, 2);
  assertOk(usage.stderr.includes("Invalid target 'nohost'"), usage.stderr);
});

Deno.test("taskserver load: Ctrl-C prints what was measured and exits 130", async () => {
  const server = await startTestServer();
  try {
    const child = spawnTaskserver(["load", `127.0.0.1:${server.port}`, "-r", "200", "-d", "60s"]);
    // Wait for the first answers (up to 60 s on a loaded machine), then interrupt.
    for (let i = 0; i < 1200 && server.answered() < 100; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGINT");
    const output = await child.output();
    const text = new TextDecoder().decode(output.stdout);
    assertEquals(output.code, 130, new TextDecoder().decode(output.stderr));
    assertOk(text.includes("Interrupted: figures cover the run until Ctrl-C."), text);
    assertOk(/Requests: \d+ sent, \d+ answered/.test(text), text);
  } finally {
    await server.close();
  }
});

Deno.test("taskserver load: the text report, with and without --no-co-correction", async () => {
  const server = await startTestServer();
  try {
    const target = `127.0.0.1:${server.port}`;
    const both = await loadCommand(target, "-r 1000 -n 200 -c 2 --no-co-correction");
    assertEquals(both.code, 0, both.stderr);
    assertOk(both.stdout.startsWith(`taskserver load ${target}: open loop, 1000 req/s`));
    assertOk(both.stdout.includes("Requests: 200 sent, 200 answered, 0 errors"), both.stdout);
    assertOk(both.stdout.includes("scheduled send time"), both.stdout);
    assertOk(/│ corrected +│/.test(both.stdout) && /│ uncorrected +│/.test(both.stdout));
    const corrected = await runTool("taskserver", ["load", target, "-r", "1000", "-n", "200"]);
    assertEquals(corrected.code, 0, corrected.stderr);
    assertOk(/│ corrected +│/.test(corrected.stdout) && !corrected.stdout.includes("uncorrected"));
    const closed = await runTool("taskserver", ["load", target, "-n", "100"]);
    assertOk(closed.stdout.includes("closed loop, 10 connections, 100 requests"), closed.stdout);
    assertOk(/│ latency +│/.test(closed.stdout), closed.stdout);
  } finally {
    await server.close();
  }
});

Deno.test("bench: our best design against the Python thread server, per client count", async () => {
  const { pythonRatios } = await import("../taskserver/study_report.ts");
  const run = (server: string, clients: number, rps: number, pipeline = 1, cpu = 30) => ({
    server,
    clients,
    requests: rps,
    rps,
    p50Ms: 1,
    p99Ms: 2,
    p999Ms: 3,
    maxMs: 4,
    errors: 0,
    workers: 0,
    pipeline,
    serverCpuUs: cpu,
  });
  const ratios = pythonRatios([
    run("async", 100, 30_000),
    run("process pool", 100, 40_000, 1, 25),
    run("python thread", 100, 16_000, 1, 60),
    run("async, pipelined (generator ceiling)", 16, 200_000, 128),
  ]);
  assertEquals(ratios.map((r) => [r.clients, r.best, r.ratio]), [[100, "process pool", 2.5]]);
  assertEquals(
    ratios[0].text,
    "100 clients: best of ours (process pool) answered 2.5× the Python thread server's " +
      "requests/s (same run, same generator); server CPU per answer 25 against 60 µs " +
      "(2.4× Python's efficiency)",
  );
});

Deno.test("load report: a generator late by more than 1 ms at p99 says so", async () => {
  const { buildReport, loadText } = await import("../taskserver/load_report.ts");
  const { loadSettings } = await import("../taskserver/load.ts");
  const settings = loadSettings(options({ rate: 1000, connections: 2, durationMs: 1000 }));
  const empty = new HdrHistogram("us").toJSON();
  const lag = new HdrHistogram("us");
  for (let i = 0; i < 98; i++) lag.record(100);
  lag.record(5_000, 2); // 2 % of sends 5 ms late: p99 is 5 ms
  const latency = new HdrHistogram("us");
  latency.record(1_000, 100);
  const measured = {
    generators: 1,
    connections: 2,
    startedAt: 0,
    endedAt: 1000,
    requests: 100,
    answered: 100,
    errorReplies: 0,
    failed: 0,
    connectErrors: 0,
    unanswered: 0,
    interrupted: false,
    firstError: null,
    latency: latency.toJSON(),
    uncorrected: latency.toJSON(),
    lag: lag.toJSON(),
    connect: empty,
    timeline: [],
  };
  const late = buildReport(settings, measured);
  assertEquals(late.summary.keptSchedule, false);
  assertEquals(late.summary.lagMs.p99, 5);
  assertEquals(late.summary.rate, 100);
  assertOk(
    loadText(late, false).includes(
      "WARNING: the generator could not keep its schedule: sent late by 5 ms at p99",
    ),
  );
  const onTime = new HdrHistogram("us");
  onTime.record(900, 100);
  const kept = buildReport(settings, { ...measured, lag: onTime.toJSON() });
  assertEquals(kept.summary.keptSchedule, true);
  assertOk(loadText(kept, false).includes("Generator kept its schedule: sent late by 0.9 ms"));
});

Deno.test("load: a server that never answers: every request failed by --timeout, exactly", async () => {
  const server = await startTestServer({ silent: true });
  try {
    const report = await runLoad(
      options({ port: server.port, connections: 2, requests: 6, timeoutMs: 300 }),
    );
    assertEquals(
      [report.summary.requests, report.summary.answered, report.measured.failed],
      [6, 0, 6],
    );
    assertEquals(report.summary.errors, 6);
    assertEquals(report.measured.firstError, "no answer within 300 ms");
    const out = await loadCommand(`127.0.0.1:${server.port}`, "-n 2 -c 1 --timeout 300");
    assertEquals(out.code, 1);
    assertOk(out.stderr.includes("no answer within 300 ms"), out.stderr);
  } finally {
    await server.close();
  }
});
