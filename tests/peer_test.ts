import { assertEquals, assertOk } from "./_assert.ts";
import { preparePeer, selfCommand, startPeer, stopProcess, which } from "../shared/peer.ts";

Deno.test("peer: which finds programs on PATH and paths, not missing ones", () => {
  assertEquals(which("sh"), true);
  assertEquals(which("/bin/sh"), true);
  assertEquals(which("netconc-no-such-program"), false);
});

Deno.test("peer: startPeer returns the first line; nextLine reads on; stop ends it", async () => {
  const peer = await startPeer("sh", { args: ["-c", "echo 4242; echo second; exec sleep 60"] });
  assertEquals(peer.firstLine, "4242");
  assertEquals(await peer.nextLine(), "second");
  await peer.stop();
  assertEquals((await peer.child.status).signal, "SIGTERM");
});

Deno.test("peer: a program that ignores SIGTERM is killed after the grace time", async () => {
  const peer = await startPeer("sh", {
    args: ["-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"],
    graceMs: 200,
  });
  assertEquals(peer.firstLine, "ready");
  await peer.stop();
  assertEquals((await peer.child.status).signal, "SIGKILL");
});

Deno.test("peer: a program that exits before its first line is an error naming it", async () => {
  let message = "";
  try {
    await startPeer("sh", { args: ["-c", "exit 3"] });
  } catch (error) {
    message = (error as Error).message;
  }
  assertEquals(message, "sh did not start: it exited before printing a line");
});

Deno.test("peer: stopProcess on a child already gone returns", async () => {
  const child = new Deno.Command("true", { stdout: "null" }).spawn();
  await child.status;
  await stopProcess(child, 10);
});

Deno.test({
  name: "peer: embedded Python and C sources are written out (and compiled) and run",
  ignore: !which("python3") || !which("gcc"),
  fn: async () => {
    const python = await preparePeer({ name: "hi", language: "python", source: "print(6 * 7)" });
    const c = await preparePeer({
      name: "hi",
      language: "c",
      source: '#include <stdio.h>\nint main(void) { printf("%d\\n", 6 * 7); return 0; }\n',
    });
    try {
      for (const program of [python, c]) {
        const peer = await startPeer(program.argv[0], { args: program.argv.slice(1) });
        assertEquals(peer.firstLine, "42");
        await peer.stop();
      }
    } finally {
      await python.close();
      await c.close();
    }
    assertEquals(which(c.argv[0]), false);
  },
});

Deno.test("peer: selfCommand runs this program from source with the given arguments", () => {
  const { command, args } = selfCommand(["serve", "--port=0"], { entry: "file:///x/main.ts" });
  assertEquals(command, Deno.execPath());
  assertEquals(args[0], "run");
  assertEquals(args.slice(-3), ["/x/main.ts", "serve", "--port=0"]);
  assertOk(!args.includes("--netconc-child"));
});
