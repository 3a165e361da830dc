/**
 * One output path: every tool's failing command under `--json` prints exactly
 * one JSON document on stdout, with `error` set, and exits with the right code
 * (2 for usage errors, 1 for failures). Port 9 (discard) is closed on loopback
 * here, so a connect to it is refused; nothing is sent anywhere else.
 */
import { assertEquals, assertOk } from "./_assert.ts";
import { runTool, spawnTool } from "./_command.ts";

const CASES: { tool: string; args: string[]; code: number; error: RegExp }[] = [
  { tool: "scanner", args: ["127.0.0.1", "-p", "0"], code: 2, error: /port/i },
  { tool: "scanner", args: ["127.0.0.1", "--timeout", "abc"], code: 2, error: /abc/ },
  { tool: "scanner", args: ["--no-such-flag"], code: 2, error: /unknown option/ },
  { tool: "scanner", args: ["bench", "--scale", "huge"], code: 2, error: /--scale "huge"/ },
  {
    tool: "transfer",
    args: ["download", "k", "--id", "u", "--server", "127.0.0.1", "--port", "9"],
    code: 1,
    error: /refused/,
  },
  { tool: "transfer", args: ["serve", "--port", "abc"], code: 2, error: /abc/ },
  { tool: "transfer", args: ["bench", "--scale", "huge"], code: 2, error: /--scale "huge"/ },
  { tool: "taskserver", args: ["call", "reverse", "x", "--port", "9"], code: 1, error: /refused/ },
  { tool: "taskserver", args: ["serve", "--mode", "fast"], code: 2, error: /fast/ },
  { tool: "taskserver", args: ["bench", "--study", "--scale", "huge"], code: 2, error: /huge/ },
  {
    tool: "interarrival",
    args: ["client", "-s", "127.0.0.1", "-P", "9", "-n", "1", "-p", "100"],
    code: 1,
    error: /refused/,
  },
  { tool: "interarrival", args: ["serve", "--port", "-1"], code: 2, error: /-1/ },
  { tool: "interarrival", args: ["bench", "--study", "--scale", "huge"], code: 2, error: /huge/ },
  { tool: "ipcbench", args: ["bench", "--sizes", "0"], code: 2, error: /0/ },
  { tool: "ipcbench", args: ["bench", "--study", "--scale", "huge"], code: 2, error: /huge/ },
  { tool: "ipcbench", args: ["study", "--no-such-flag"], code: 2, error: /unknown option/ },
];

for (const { tool, args, code, error } of CASES) {
  Deno.test(`--json failure: ${tool} ${args.join(" ")} prints one document with error`, async () => {
    const result = await runTool(tool, [...args, "--json"]);
    const lines = result.stdout.split("\n").filter((line) => line.trim() !== "");
    assertEquals(lines.length, 1, `stdout: ${result.stdout}\nstderr: ${result.stderr}`);
    const doc = JSON.parse(lines[0]);
    assertEquals(doc.tool, tool);
    assertOk(typeof doc.error === "string" && error.test(doc.error), `error: ${doc.error}`);
    assertEquals(result.code, code, result.stderr);
  });
}

for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  Deno.test(`--json interrupted: ${signal} during a command that does not watch it prints one document with error, exit ${code}`, async () => {
    // A receiver that never greets: the client waits for it (at most 20 s) when the signal comes.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const run = spawnTool("interarrival", [
      "client",
      "-s",
      "127.0.0.1",
      "-P",
      String(listener.addr.port),
      "-n",
      "10",
      "--connect-timeout",
      "20",
      "--json",
    ]);
    const conn = await listener.accept();
    try {
      run.child.kill(signal);
      const status = await run.child.status;
      const stderr = await run.stderrToEnd();
      const lines = (await run.stdout).trim().split("\n");
      assertEquals([status.code, lines.length], [code, 1]);
      const doc = JSON.parse(lines[0]);
      assertEquals([doc.command, doc.results], ["client", null]);
      assertOk(String(doc.error).includes(`interrupted by ${signal}`), doc.error);
      assertOk(stderr.includes(`interarrival: interrupted by ${signal}`), stderr);
    } finally {
      conn.close();
      listener.close();
    }
  });
}
