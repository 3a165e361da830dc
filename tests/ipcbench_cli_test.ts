import { assertEquals, assertOk } from "./_assert.ts";
import { assertUsageErrors, type Captured, runTool, spawnTool } from "./_command.ts";
import { validateStudyReport } from "../shared/study.ts";
import { caseShapes } from "./_ipcbench.ts";

function run(...args: string[]): Promise<Captured> {
  return runTool("ipcbench", args);
}

Deno.test("ipcbench cli: invalid sizes, counts and names exit 2 naming the value", async () => {
  // Each command line (split at spaces) and what its error must say.
  const cases: [string, string][] = [
    ["bench --sizes 3", "Invalid --sizes '3'"],
    ["bench --sizes 64,1g", "Invalid --sizes '1g'"],
    ["bench --round-trips 0", "'0' is not an integer from 1"],
    ["bench --runs two", "'two' is not an integer"],
    ["bench --transports tcp,pigeon", "Invalid --transports 'pigeon'"],
    ["bench --pin left", "Invalid --pin 'left'"],
    ["bench --study --scale huge", 'Invalid --scale "huge"'],
    ["study --repeats -1", "'-1' is not an integer from 1"],
  ];
  await assertUsageErrors("ipcbench", cases.map(([line, message]) => [line.split(" "), message]));
});

Deno.test("ipcbench cli: --help shows the defaults", async () => {
  const result = await run("bench", "--help");
  assertEquals(result.code, 0);
  for (const text of ["--round-trips", "10000", "4,64,4096,65536,1048576", "same,split"]) {
    assertOk(result.stdout.includes(text), text);
  }
});

Deno.test("ipcbench cli: bench --json prints one document with every case checked", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ipcbench-out-" });
  try {
    const result = await run(
      "bench",
      "--transports",
      "async,tcp",
      "--sizes",
      "4,64k",
      "--round-trips",
      "30",
      "--warmup",
      "3",
      "--runs",
      "2",
      "--pin",
      "none",
      "--json",
      "--out",
      dir,
    );
    assertEquals(result.code, 0, result.stderr);
    assertEquals(JSON.parse(result.stdout).tool, "ipcbench");
    assertEquals(caseShapes(result.stdout), [
      ["async", 4, 2],
      ["async", 65536, 2],
      ["tcp", 4, 2],
      ["tcp", 65536, 2],
    ]);
    const files = [...Deno.readDirSync(dir)].map((entry) => entry.name).sort();
    assertEquals(files, [
      "ipcbench-bench-1.svg",
      "ipcbench-bench-2.svg",
      "ipcbench-bench.csv",
      "ipcbench-bench.json",
      "ipcbench-bench.md",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ipcbench cli: study prints the study's lines and the corrected figures", async () => {
  const result = await run("study", "--round-trips", "200", "--repeats", "2");
  assertEquals(result.code, 0, result.stderr);
  const lines = result.stdout.split("\n").filter((line) => /^(High|Low) Level \d: \d+$/.test(line));
  assertEquals(lines.map((line) => line.replace(/: \d+$/, "")), [
    "High Level 1",
    "Low Level 1",
    "High Level 2",
    "Low Level 2",
  ]);
  assertOk(result.stdout.includes("rt/s (wall)"));
  assertOk(result.stdout.includes("time.process_time()"));
});

Deno.test("ipcbench cli: bench --study --scale smoke is a valid StudyReport", async () => {
  const result = await run("bench", "--study", "--scale", "smoke", "--json");
  assertEquals(result.code, 0, result.stderr);
  const doc = JSON.parse(result.stdout);
  assertEquals(validateStudyReport(doc.results), []);
  assertEquals(doc.results.study, "ipcbench");
  assertEquals(doc.results.scale, "smoke");
  assertEquals(doc.results.measured.columns, doc.results.published.columns);
  assertEquals(doc.results.measured.rows.map((row: unknown[]) => row[0]), [1, 2, 3]);
  assertOk(doc.results.findings.length >= 2);
});

for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  Deno.test(`ipcbench cli: bench stopped by ${signal} prints the cases measured so far`, async () => {
    // The first case is short; the second (a child over pipes) would run for a long time.
    const bench = "bench --transports async,pipes --sizes 64 --pin none --runs 1 " +
      "--round-trips 5000000 --warmup 10 --max-bytes 1000000 --no-anchors --json -v";
    const run = spawnTool("ipcbench", bench.split(" "));
    const child = run.child;
    // `-v` names each case as it starts: the second name means the first is measured.
    const seen = await run.stderrUntil("measuring pipes");
    assertOk(seen.includes("measuring pipes"), seen);
    // Signal once the pipes case's child runs (it is then measuring or starting to).
    let pids: number[] = [];
    for (let i = 0; i < 300 && pids.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      pids = liveDescendants(child.pid);
    }
    assertOk(pids.length > 0, "the pipes case started no child");
    await new Promise((resolve) => setTimeout(resolve, 500));
    pids = liveDescendants(child.pid);
    child.kill(signal);
    const status = await child.status;
    await run.stderrToEnd();
    assertEquals(status.code, code);
    const doc = JSON.parse(await run.stdout);
    assertEquals(doc.error ?? null, null);
    assertEquals(doc.results.interrupted, true);
    assertEquals(doc.results.cases.map((c: { transport: string }) => c.transport), ["async"]);
    for (let i = 0; i < 50 && pids.some(isAlive); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assertEquals(pids.filter(isAlive), []);
  });
}

/** Processes started by `pid` (children and their children), from /proc. */
function liveDescendants(pid: number): number[] {
  const found: number[] = [];
  const children = (parent: number) => {
    try {
      const text = Deno.readTextFileSync(`/proc/${parent}/task/${parent}/children`).trim();
      return text === "" ? [] : text.split(/\s+/).map(Number);
    } catch {
      return [];
    }
  };
  const queue = children(pid);
  while (queue.length > 0) {
    const next = queue.shift()!;
    found.push(next);
    queue.push(...children(next));
  }
  return found;
}

function isAlive(pid: number): boolean {
  try {
    const state = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]?.[0];
    return state !== undefined && state !== "Z";
  } catch {
    return false;
  }
}
