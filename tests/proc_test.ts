import { assertEquals, assertOk } from "./_assert.ts";
import { processTreeStatLines, readProcText } from "../shared/proc.ts";

Deno.test("proc: reads another process's /proc files, directly or through cat", async () => {
  const sleeper = new Deno.Command("sleep", { args: ["30"], stdout: "null" }).spawn();
  try {
    // The child is `sleep` once it has exec'd (right after the spawn it may still be a copy of deno).
    for (
      let i = 0;
      i < 100 && !readProcText(`/proc/${sleeper.pid}/status`)?.includes("\tsleep");
      i++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // With --allow-all (this test) the read is direct.
    assertOk(readProcText(`/proc/${sleeper.pid}/status`)?.includes("Name:\tsleep"));
    assertEquals(processTreeStatLines(sleeper.pid)?.[0].startsWith(`${sleeper.pid} (sleep)`), true);
    assertEquals(readProcText("/proc/0/none"), null);
    // With only --allow-run (as the tools run), Deno refuses the direct read: cat reads it.
    const module = new URL("../shared/proc.ts", import.meta.url).href;
    const code = `import { processTreeStatLines, readProcText } from "${module}";\n` +
      `console.log(JSON.stringify([readProcText("/proc/${sleeper.pid}/status")?.includes("Name:\\tsleep"), ` +
      `processTreeStatLines(${sleeper.pid})?.[0].startsWith("${sleeper.pid} (sleep)")]));`;
    const file = await Deno.makeTempFile({ suffix: ".ts" });
    try {
      await Deno.writeTextFile(file, code);
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--quiet", "--allow-run", "--allow-read", file],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(new TextDecoder().decode(out.stdout).trim(), "[true,true]");
    } finally {
      await Deno.remove(file);
    }
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
  }
});
