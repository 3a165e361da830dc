/**
 * `taskserver load` works against any server that speaks the protocol: ours in
 * every mode (pooled and per client), and the study's Python servers (line
 * framing, and the study's bare-request framing). Exact counts, every answer
 * checked against our own server's.
 */
import { assertEquals } from "./_assert.ts";
import { startTaskServer } from "../taskserver/server.ts";
import { havePython, launchPythonServer } from "../taskserver/bench.ts";
import { type LoadOptions, loadOptions, runLoad } from "../taskserver/load.ts";
import { parseMix } from "../taskserver/load_plan.ts";
import { SERVER_DESIGNS } from "./_taskserver_load_server.ts";

function options(port: number, overrides: Partial<LoadOptions>): LoadOptions {
  return loadOptions(port, {
    connections: 3,
    pipeline: 2,
    requests: 300,
    timeoutMs: 20_000,
    mix: parseMix("1:30,2:30,3:40"),
    payload: "BenchmarkTestString{n}",
    expression: "{n}*3",
    verify: true,
    ...overrides,
  });
}

for (const { mode, perClient } of SERVER_DESIGNS) {
  const name = `${mode}${perClient ? " per client" : ""}`;
  Deno.test(`taskserver load against our ${name} server: exact counts, every answer ours`, async () => {
    const server = await startTaskServer({
      host: "127.0.0.1",
      port: 0,
      mode,
      workers: 2,
      perClient: perClient ?? false,
    });
    try {
      // A sequential server serves one connection at a time: one connection.
      const report = await runLoad(
        options(server.port, mode === "sequential" ? { connections: 1 } : {}),
      );
      assertEquals(
        [report.summary.requests, report.summary.answered, report.summary.errors],
        [300, 300, 0],
      );
      const open = await runLoad(options(server.port, {
        connections: mode === "sequential" ? 1 : 4,
        rate: 2000,
        requests: 200,
        pipeline: 1,
      }));
      assertEquals(
        [open.summary.requests, open.summary.answered, open.summary.errors],
        [200, 200, 0],
      );
    } finally {
      await server.close();
    }
  });
}

Deno.test({
  name: "taskserver load against the study's Python servers (line and study framing)",
  ignore: !(await havePython()),
  fn: async () => {
    const lines = await launchPythonServer(
      { label: "python thread", kind: "python", python: "thread", framing: "line" },
      0,
    );
    try {
      // The study's process_request knows choices 1 and 3.
      const report = await runLoad(options(lines.port, { mix: parseMix("1:1,3:1") }));
      assertEquals(
        [report.summary.requests, report.summary.answered, report.summary.errors],
        [300, 300, 0],
      );
    } finally {
      await lines.stop();
    }
    const study = await launchPythonServer(
      { label: "python fork", kind: "python", python: "fork", framing: "study" },
      0,
    );
    try {
      const report = await runLoad(options(study.port, {
        framing: "raw",
        pipeline: 1,
        payload: "BenchmarkTestString123",
      }));
      assertEquals(report.settings.framing, "raw");
      assertEquals(
        [report.summary.requests, report.summary.answered, report.summary.errors],
        [300, 300, 0],
      );
    } finally {
      await study.stop();
    }
  },
});
