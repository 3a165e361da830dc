/**
 * transfer/fast_start.ts parses a plain `upload FILE --json|--quiet` without
 * commander and repeats the upload command's defaults to do so: these tests
 * run the same command lines through the fast start and through the full
 * command line (`TRANSFER_FAST_START=off`) and require the same documents,
 * text and exit codes, so the two cannot drift apart.
 */
import { assertEquals, assertOk } from "./_assert.ts";
import { capture, type Captured } from "./_command.ts";
import { parseFastUpload } from "../transfer/fast_start.ts";
import { withFileAndServer } from "./fixtures/transfer_helpers.ts";

const MAIN = new URL("../transfer/main.ts", import.meta.url).pathname;

/** Runs `transfer args` from source, through the fast start or the full command line. */
function transfer(args: string[], fastStart: boolean): Promise<Captured> {
  return capture(
    Deno.execPath(),
    ["run", "--quiet", "--allow-all", "--unstable-net", MAIN, ...args],
    { env: { NO_COLOR: "1", TRANSFER_FAST_START: fastStart ? "on" : "off" } },
  );
}

type Document = {
  tool: string;
  command: string;
  options: Record<string, unknown>;
  results: Record<string, unknown> | null;
  error?: string | null;
};

function documentOf(run: Captured): Document {
  return JSON.parse(run.stdout) as Document;
}

/** The fields of an upload result that do not depend on time, tokens or the key. */
const STABLE_RESULT_FIELDS = [
  "size",
  "blockSize",
  "blocks",
  "blocksSent",
  "mode",
  "plan",
  "streams",
  "localMd5",
  "serverMd5",
  "status",
  "reason",
];

function stable(results: Record<string, unknown> | null): Record<string, unknown> | null {
  if (results === null) return null;
  return Object.fromEntries(STABLE_RESULT_FIELDS.map((name) => [name, results[name]]));
}

Deno.test("transfer fast start: the plain command lines it takes, and the ones it leaves to commander", async () => {
  const file = await Deno.makeTempFile();
  try {
    const plain = parseFastUpload(["upload", file, "--id", "alice", "--json", "--port", "9000"]);
    assertOk(plain !== null);
    assertEquals([plain.path, plain.options.port, plain.options.id, plain.flags.json], [
      file,
      9000,
      "alice",
      true,
    ]);
    for (
      const args of [
        ["download", "k", "--id", "alice", "--json"],
        ["upload", file, "--id", "alice"],
        ["upload", file, "--id", "alice", "--json", "--mode", "thread"],
        ["upload", file, "--id", "alice", "--json", "--port", "0"],
        ["upload", file, "--id", "alice", "--json", "--streams", "4"],
        ["upload", file, "--id", "alice", "--json", "--key", "-x"],
        ["upload", `${file}.missing`, "--id", "alice", "--json"],
        ["upload", file, file, "--id", "alice", "--json"],
        ["upload", file, "--json"],
      ]
    ) {
      assertEquals(parseFastUpload(args), null, args.join(" "));
    }
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("transfer fast start: the same documents, text and exit codes as the full command line", async () => {
  await withFileAndServer(300_000, 41, async ({ dir, server }) => {
    const file = `${dir}/in.bin`;
    const common = ["--id", "alice", "--port", String(server.port)];
    // A fresh upload: each path under its own key, everything else the same.
    const fresh = await Promise.all(
      [true, false].map((fast) =>
        transfer(["upload", file, ...common, "--key", fast ? "fast" : "full", "--json"], fast)
      ),
    );
    const [fastFresh, fullFresh] = fresh.map(documentOf);
    assertEquals(fresh.map((run) => run.code), [0, 0]);
    assertEquals(Object.keys(fastFresh.options), Object.keys(fullFresh.options));
    assertEquals(
      { ...fastFresh.options, key: "k" },
      { ...fullFresh.options, key: "k" },
    );
    assertEquals(Object.keys(fastFresh.results ?? {}), Object.keys(fullFresh.results ?? {}));
    assertEquals(stable(fastFresh.results), stable(fullFresh.results));
    assertEquals([fastFresh.results?.key, fullFresh.results?.key], ["fast", "full"]);

    // The same file again under the same key: skipped, in a document and in text.
    for (const output of ["--json", "--quiet"]) {
      const again = [];
      for (const fast of [true, false]) {
        again.push(await transfer(["upload", file, ...common, "--key", "fast", output], fast));
      }
      assertEquals(again.map((run) => run.code), [0, 0]);
      if (output === "--quiet") {
        assertEquals(again[0].stdout, again[1].stdout);
        assertEquals(again[0].stdout, "Skipped 'fast': unchanged (same MD5 on the server)\n");
      } else {
        const [fastAgain, fullAgain] = again.map(documentOf);
        assertEquals(fastAgain.options, fullAgain.options);
        assertEquals(stable(fastAgain.results), stable(fullAgain.results));
      }
    }

    // Failures: a refused connection (exit 1) and a value the parser refuses (exit 2).
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closed = (listener.addr as Deno.NetAddr).port;
    listener.close();
    for (
      const [args, code] of [
        [["upload", file, "--id", "alice", "--port", String(closed), "--json"], 1],
        [["upload", file, ...common, "--timeout", "0", "--json"], 2],
      ] as const
    ) {
      const runs = [];
      for (const fast of [true, false]) runs.push(await transfer([...args], fast));
      assertEquals(runs.map((run) => run.code), [code, code]);
      const [fastFailed, fullFailed] = runs.map(documentOf);
      assertEquals(fastFailed.error, fullFailed.error);
      assertEquals(fastFailed.options, fullFailed.options);
      assertOk(typeof fastFailed.error === "string" && fastFailed.error.length > 0);
    }
  });
});
