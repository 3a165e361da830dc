import { assertEquals } from "./_assert.ts";
import { BufferedReader } from "../shared/reader.ts";
import { decodeText } from "../shared/codec.ts";
import { sleep } from "../shared/clock.ts";

function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
}

for (const signal of ["SIGKILL", "SIGTERM", "SIGINT"] as const) {
  Deno.test(`process mode: a parent ended by ${signal} leaves no children`, async () => {
    const parent = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", new URL("./fixtures/orphan_main.ts", import.meta.url).pathname],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const line = await new BufferedReader(parent.stdout).readLine(4096, { timeout: 30_000 });
    const { children } = JSON.parse(decodeText(line as Uint8Array)) as { children: number[] };
    assertEquals(children.length, 2);
    assertEquals(children.map(alive), [true, true]);
    parent.kill(signal);
    await parent.status;
    // Children notice their closed stdin and exit; allow a bounded grace period.
    for (let i = 0; i < 50 && children.some(alive); i++) await sleep(100);
    assertEquals(children.map(alive), [false, false]);
  });
}
