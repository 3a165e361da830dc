import { assertEquals, assertOk } from "./_assert.ts";
import { type Captured, runTool } from "./_command.ts";
import { encodeLine } from "../shared/codec.ts";
import { announcedPort } from "./_interarrival.ts";
import "../interarrival/main.ts";

const entry = new URL("../interarrival/main.ts", import.meta.url);

function tool(args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--unstable-net", entry.pathname, ...args],
    stdout: "piped",
    stderr: "piped",
  });
}

function run(args: string[]): Promise<Captured> {
  return runTool("interarrival", args);
}

Deno.test("interarrival cli: client option errors exit 2 and say what is wrong", async () => {
  const cases: [string[], string][] = [
    [["-d", "e", "-p", "-5", "-s", "127.0.0.1"], "must be > 0 for exponential, got -5"],
    [["-d", "u", "-p", "0", "-s", "127.0.0.1"], "must be > 0 for uniform, got 0"],
    [["-d", "zipf", "-p", "1", "-s", "127.0.0.1"], "Unknown distribution 'zipf'"],
    [["-d", "e", "-p", "2"], "required option '-s, --server <host>' not specified"],
    [["-d", "e", "-p", "x", "-s", "127.0.0.1"], "Invalid --param 'x'"],
    [["-w", "0", "-d", "e", "-p", "1", "-s", "127.0.0.1"], "'0' is not an integer from 1"],
  ];
  const results = await Promise.all(cases.map(([args]) => run(["client", ...args])));
  for (const [i, [args, message]] of cases.entries()) {
    assertEquals(results[i].code, 2, `${args.join(" ")}: ${results[i].stderr}`);
    assertOk(results[i].stderr.includes(message), `${args.join(" ")}: ${results[i].stderr}`);
    assertEquals(results[i].stdout, "");
  }
});

Deno.test("interarrival cli: a refused connection exits 1 with the address", async () => {
  // Port 9 (discard) is closed on loopback here; the message names it.
  const result = await run(["client", "-d", "d", "-p", "0.001", "-s", "127.0.0.1", "-P", "9"]);
  assertEquals(result.code, 1);
  assertOk(
    result.stderr.includes("Cannot connect to 127.0.0.1:9: connection refused"),
    result.stderr,
  );
});

Deno.test("interarrival cli: SIGTERM in the middle of a run prints exact summaries and exits 143", async () => {
  const samples = await Deno.makeTempFile({ suffix: ".csv" });
  const child = tool([
    "serve",
    "--port",
    "0",
    "--address",
    "127.0.0.1",
    "--grace",
    "0.2",
    "--json",
    "--out",
    samples,
  ]).spawn();
  const stdout = new Response(child.stdout).text();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  const conns: Deno.TcpConn[] = [];
  try {
    const port = await announcedPort(reader, child, 20_000);
    for (let i = 0; i < 2; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn);
      for (let k = 0; k < 3 + i; k++) await conn.write(encodeLine(`Worker ${i}, Event ${k}`));
    }
    // A message cut in the middle, then the signal while both connections are open.
    await conns[1].write(new TextEncoder().encode("Worker 1, Ev"));
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.kill("SIGTERM");
    const status = await child.status;
    assertEquals(status.code, 143);
  } finally {
    for (const conn of conns) conn.close();
    await reader.cancel().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }
  const doc = JSON.parse(await stdout);
  assertEquals(doc.command, "serve");
  assertEquals(doc.error, null);
  const r = doc.results;
  assertEquals([r.connections, r.messages, r.unterminated], [2, 8, 1]);
  assertEquals(r.closeReasons, { "server-closing": 2 });
  assertEquals(r.dataInterarrival.count, 6);
  assertEquals(r.connectionInterarrival.count, 1);
  assertEquals(r.stoppedBy, "SIGTERM");
  // Every sample is in the file: a header, 2 connection rows and 8 message rows.
  const rows = (await Deno.readTextFile(samples)).trim().split("\n");
  await Deno.remove(samples);
  assertEquals(rows.length, 11);
  assertEquals(rows.filter((row) => row.startsWith("data,2,")).length, 5);
});
