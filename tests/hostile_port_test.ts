/**
 * Issue 13 item 6: a server refuses a port another process already serves,
 * `Cannot listen on 127.0.0.1:PORT: address already in use`, exit 1, in every
 * mode, even where its own listeners use `reusePort` (backlog listeners, pools),
 * which would otherwise join the other process's port and split its traffic.
 */
import { assertEquals, assertOk } from "./_assert.ts";
import {
  serveArgs,
  SERVER_KINDS,
  serverMain,
  startServerProcess,
} from "../tools/hostile_clients.ts";

async function runServe(kind: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--unstable-net", serverMain(kind as never), ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

function listeners(port: number): number {
  const out = new Deno.Command("ss", { args: ["-Hltn", `sport = :${port}`], stdout: "piped" })
    .outputSync();
  return new TextDecoder().decode(out.stdout).split("\n").filter((line) => line.trim()).length;
}

const modes: [string, string[]][] = [
  ["sequential", []],
  ["async", []],
  ["thread", []],
  ["process", []],
  ["thread", ["--per-connection"]],
];

/** taskserver names the per-connection design `--per-client`. */
function perConnectionFlag(kind: string): string {
  return kind === "taskserver" ? "--per-client" : "--per-connection";
}

// The other process listens with reusePort, as a pooled server does: the hard case.
for (const reusePort of [true, false]) {
  Deno.test(`busy port (other listener ${reusePort ? "with" : "without"} reusePort): every server and mode refuses, exit 1, exact message`, async () => {
    const other = Deno.listen({ hostname: "127.0.0.1", port: 0, reusePort });
    const port = (other.addr as Deno.NetAddr).port;
    try {
      const cases = SERVER_KINDS.flatMap((kind) =>
        modes.map(([mode, flags]) => ({ kind, mode, flags }))
      )
        .map((c) => ({ ...c, flags: c.flags.map(() => perConnectionFlag(c.kind)) }));
      const results = [];
      // Three at a time: each is a deno start on a loaded machine.
      for (let i = 0; i < cases.length; i += 3) {
        results.push(
          ...(await Promise.all(
            cases.slice(i, i + 3).map(async ({ kind, mode, flags }) => {
              const extra = [...flags];
              if (kind === "transfer") extra.push("--root", await Deno.makeTempDir());
              const r = await runServe(kind, serveArgs(kind, mode, port, extra));
              return { kind, mode, flags, ...r };
            }),
          )),
        );
      }
      for (const r of results) {
        const what = `${r.kind} ${r.mode} ${r.flags.join(" ")}`;
        assertEquals([what, r.code], [what, 1]);
        assertOk(
          r.stderr.includes(
            `${r.kind}: error: Cannot listen on 127.0.0.1:${port}: address already in use`,
          ),
          `${what}: ${r.stderr}`,
        );
      }
      // Nobody joined the other process's port.
      assertEquals(listeners(port), 1);
    } finally {
      other.close();
    }
  });
}

Deno.test("taskserver: a second pool on a busy pool's port is refused; the first keeps every listener", async () => {
  const first = await startServerProcess("taskserver", "process", { extra: ["--workers", "2"] });
  try {
    const before = listeners(first.port);
    assertOk(before >= 2, `${before} listeners`);
    for (const mode of ["thread", "process", "async"]) {
      const r = await runServe("taskserver", serveArgs("taskserver", mode, first.port));
      assertEquals([mode, r.code], [mode, 1]);
      assertOk(
        r.stderr.includes(
          `taskserver: error: Cannot listen on 127.0.0.1:${first.port}: address already in use`,
        ),
        r.stderr,
      );
    }
    assertEquals(listeners(first.port), before);
  } finally {
    await first.stop();
  }
});
