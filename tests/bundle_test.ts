import { assertEquals, assertOk } from "./_assert.ts";

const root = new URL("../", import.meta.url);

Deno.test("bundle: thread and process modes work from a single-file bundle", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/bundle_main.js`;
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform", "deno", "-o", out, "tests/fixtures/bundle_main.ts"],
      cwd: root,
    }).output();
    assertEquals(built.code, 0, new TextDecoder().decode(built.stderr));
    for (const mode of ["sequential", "async", "thread", "process"]) {
      // Run from the temporary directory, away from the project's config, as a user would.
      const run = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-config", "--allow-all", out, mode],
        cwd: dir,
      }).output();
      const stderr = new TextDecoder().decode(run.stderr);
      assertEquals(run.code, 0, `${mode}: ${stderr}`);
      const outcomes = JSON.parse(new TextDecoder().decode(run.stdout)) as {
        ok: boolean;
        value: { pid: number; worker: number };
        s: number;
        e: number;
      }[];
      assertEquals(outcomes.map((o) => o.ok), [true, true]);
      const workers = outcomes.map((o) => o.value.worker).sort();
      const pids = new Set(outcomes.map((o) => o.value.pid));
      if (mode === "thread" || mode === "process") {
        assertEquals(workers, [0, 1], mode);
        assertOk(
          Math.max(...outcomes.map((o) => o.s)) < Math.min(...outcomes.map((o) => o.e)),
          `${mode} overlap`,
        );
      }
      assertEquals(pids.size, mode === "process" ? 2 : 1, mode);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
