import { launch } from "/work/wt/taskserver/taskserver/bench.ts";
import { inProcessClients } from "/work/wt/taskserver/taskserver/load_bench.ts";
const server = await launch({ label: "async", kind: "taskserver", mode: "async" }, 3000, "/work/wt/taskserver/taskserver/main.ts");
try {
  for (let i = 0; i < 2; i++) {
    const run = await inProcessClients(server.port, 10000, false, 60000);
    console.log(JSON.stringify(run), (await Deno.readTextFile("/proc/pressure/cpu")).split("\n")[0]);
  }
} finally { await server.stop(); }
