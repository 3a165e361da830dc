import { assertEquals, assertOk } from "./_assert.ts";
import { assertConformance, assertEchoed, echoThrough } from "./fixtures/child_channel_entry.ts";
import { CHANNEL_KINDS, resolveChannel } from "../shared/child_channel.ts";
import { liveChildPids } from "../shared/runtime.ts";

const fixture = new URL("./fixtures/child_channel_entry.ts", import.meta.url).pathname;

for (const kind of CHANNEL_KINDS) {
  Deno.test(`child channel [${kind}]: messages and bytes both ways, larger than a ring`, async () => {
    const big = new Uint8Array((2 << 20) + 12345).map((_, i) => (i * 7) % 256);
    const payloads = [
      { data: { hello: "wörld", list: [1, 2, 3] } },
      { data: null, bytes: new Uint8Array([1, 2, 3]) },
      { data: 42, bytes: big },
      ...Array.from({ length: 200 }, (_, n) => ({ data: n, bytes: new Uint8Array([n & 255]) })),
    ];
    const result = await echoThrough(kind, payloads);
    assertEquals(result.kind, kind);
    assertEquals(result.note, undefined);
    assertEchoed(result.replies, payloads);
    assertEquals(liveChildPids(), []);
  });

  // The execution-mode conformance suite, process mode, over this channel kind.
  Deno.test(`child channel [${kind}]: the process-mode conformance suite passes`, async () => {
    await assertConformance("process", { NETCONC_CHANNEL: kind });
  });
}

Deno.test("child channel: without --allow-ffi, shm falls back to unix with identical results", async () => {
  const run = async (flags: string[]) => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--unstable-net", ...flags, fixture, "shm"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertOk(output.success, new TextDecoder().decode(output.stderr));
    return JSON.parse(new TextDecoder().decode(output.stdout));
  };
  const base = ["--allow-read", "--allow-write", "--allow-run", "--allow-env", "--allow-net"];
  const withFfi = await run([...base, "--allow-ffi"]);
  const without = await run(base);
  assertEquals(withFfi.kind, "shm");
  assertEquals(withFfi.note, null);
  assertEquals(without.kind, "unix");
  assertEquals(without.note, "shared memory needs --allow-ffi: using unix");
  assertEquals(without.data, withFfi.data);
  assertEquals([without.same, withFfi.same], [true, true]);
});

Deno.test("child channel: choices resolve to a kind this process may use", () => {
  assertEquals(resolveChannel("pipes"), { kind: "pipes" });
  assertEquals(resolveChannel("unix"), { kind: "unix" });
  assertEquals(resolveChannel("auto").kind, "shm");
});

Deno.test("child channel: without --allow-net or --allow-ffi, pipes carry the same results", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-read", "--allow-write", "--allow-run", fixture, "auto"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertOk(output.success, new TextDecoder().decode(output.stderr));
  const result = JSON.parse(new TextDecoder().decode(output.stdout));
  assertEquals(result, {
    kind: "pipes",
    note: "shared memory needs --allow-ffi; a Unix socket needs --allow-read, --allow-write and " +
      "--allow-net: using pipes",
    data: [{ n: 1 }, "x"],
    same: true,
  });
});
