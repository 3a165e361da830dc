import { assertEquals } from "./_assert.ts";
import { parsePlainScan } from "../scanner/fast_scan.ts";
import { resolveEngine } from "../scanner/engines.ts";
import { netnsTest } from "./_netns.ts";
import { dropSyns, scannerArgs } from "./_scanner.ts";

Deno.test("scanner fast path: small scans of literal addresses parse, the rest go to the CLI", async () => {
  const plain = await parsePlainScan(["127.0.0.1", "-p", "22,80", "--timeout=200"]);
  assertEquals(plain, {
    targets: [{ target: "127.0.0.1", address: "127.0.0.1", family: 4 }],
    ports: [22, 80],
    timeoutMs: 200,
    retries: 1,
    engine: resolveEngine("auto"),
    show: ["open"],
    format: "table",
  });
  assertEquals(
    (await parsePlainScan(["::1", "-p", "7", "--engine", "connect"]))?.engine,
    "connect",
  );
  assertEquals((await parsePlainScan(["::1", "--ports=7"]))?.ports, [7]);
  if (resolveEngine("auto") === "ffi") {
    const all = await parsePlainScan(["127.0.0.1", "-p-", "--grep", "--show", "open,filtered"]);
    assertEquals(
      [all?.ports.length, all?.format, all?.show],
      [65535, "grep", ["open", "filtered"]],
    );
  }
  for (
    const args of [
      [],
      ["127.0.0.1", "--engine", "connect"], // 1024 probes: more than 128 Deno.connect calls
      ["127.0.0.1", "-p", "1-129", "--engine", "connect"],
      ["127.0.0.1", "--grep", "--csv"],
      ["localhost", "-p", "80"], // a name needs the resolver
      ["127.0.0.0/30", "-p", "80"],
      ["127.0.0.1", "-p", "0"], // the CLI names the bad value
      ["127.0.0.1", "-p", "80", "--json"],
      ["127.0.0.1", "-p"],
      ["127.0.0.1", "-p", "80", "--timeout", "0"],
      ["127.0.0.1", "-p", "80", "--engine", "turbo"], // the CLI names the bad engine
      ["scan", "127.0.0.1", "-p", "80"],
      ["bench", "--study"],
      ["--help"],
    ]
  ) {
    assertEquals(await parsePlainScan(args), null, args.join(" "));
  }
});

netnsTest(
  import.meta.url,
  "scanner fast path: Ctrl-C while ports wait prints the partial result and exits 130",
  async () => {
    // Signal handlers are installed once the first connects are out and the scan waits
    // (only dropped ports: an answer would shrink the adaptive timeout).
    await dropSyns("100-199", "fastpath");
    const child = new Deno.Command(Deno.execPath(), {
      args: scannerArgs(["127.0.0.1", "-p", "100-199", "--timeout", "60000", "--grep"]),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Once its 100 connects are out (sockets open), the scan waits for 60 s: signal then,
    // with a generous pause for the handlers to go in.
    for (let i = 0; i < 300 && (await openSockets(child.pid)) < 100; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    child.kill("SIGINT");
    const output = await child.output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    assertEquals(output.code, 130, stderr);
    assertEquals(stdout.startsWith("Host: 127.0.0.1"), true, stdout);
    assertEquals(stderr.includes("interrupted by SIGINT"), true, stderr);
  },
);

/** Sockets a process holds open (its `/proc/PID/fd` links to `socket:`); 0 once it is gone. */
async function openSockets(pid: number): Promise<number> {
  let count = 0;
  try {
    for await (const entry of Deno.readDir(`/proc/${pid}/fd`)) {
      try {
        if ((await Deno.readLink(`/proc/${pid}/fd/${entry.name}`)).startsWith("socket:")) count++;
      } catch {
        // Closed meanwhile.
      }
    }
  } catch {
    return 0;
  }
  return count;
}
