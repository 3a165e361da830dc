/**
 * The seed study's measurements (`measureStudy`): raw milliseconds for the plan
 * of a scale; study.ts turns them into the report. Loaded only when a study runs.
 *
 * @module
 */
import { readPressure } from "../shared/pressure.ts";
import { median } from "../shared/stats.ts";
import type { StudyContext } from "../shared/study_harness.ts";
import { DEFAULT_BLOCK_SIZE, formatSize } from "./protocol.ts";
import { simpleRequest, upload } from "./client.ts";
import {
  commandSeconds,
  type Lab,
  makeFile,
  openLab,
  rawCopy,
  repeat,
  round,
  serverPeakRssMb,
  startPythonPeer,
  timeUpload,
} from "./bench_lab.ts";
import {
  type CeilingRaw,
  STUDY_BLOCKS,
  studySweepSizes,
  type TransferPlan,
  type TransferRaw,
} from "./study.ts";

/**
 * The default upload (`--mode auto`: the fast plan against our server) of a file
 * beside `dd conv=fdatasync` and `md5sum` of the same file, same run: issue 15's
 * ratio (target ≥ 0.8 of the slower), at a size per scale. `bench --defaults`
 * measures the same with whole client processes.
 */
async function defaultUploadCeiling(
  lab: Lab,
  size: number,
  status: (line: string) => void,
): Promise<CeilingRaw | null> {
  const path = `${lab.dir}/default-${size}`;
  await makeFile(path, size);
  try {
    const dd = await commandSeconds("dd", [
      `if=${path}`,
      `of=${lab.dir}/dd-copy`,
      "bs=1M",
      "conv=fdatasync",
    ]);
    await Deno.remove(`${lab.dir}/dd-copy`).catch(() => {});
    const md5sum = await commandSeconds("md5sum", [path]);
    if (dd === null || md5sum === null) return null;
    const base = { host: "127.0.0.1", port: lab.server.port, id: "bench", timeoutMs: 120_000 };
    const result = await upload(path, { ...base, key: "default-upload", entry: lab.entry });
    await simpleRequest(base, "FILE", "DELETE", { key: "default-upload" });
    const seconds = result.elapsedMs / 1000;
    status(
      `default upload ${formatSize(size)}: ${
        round(Math.max(dd, md5sum) / seconds, 2)
      } of the ceiling`,
    );
    return {
      bytes: size,
      plan: result.plan,
      ddSeconds: dd,
      md5sumSeconds: md5sum,
      uploadSeconds: seconds,
    };
  } finally {
    await Deno.remove(path).catch(() => {});
  }
}

/** CPU pressure (`some avg10` of /proc/pressure/cpu, in %), or null where unavailable. */
function cpuPressure(): number | null {
  const pressure = readPressure();
  return pressure ? Math.round(pressure.avg10) : null;
}

const SEQUENTIAL_20480 = {
  mode: "sequential" as const,
  streams: 1,
  window: 1,
  blockSize: DEFAULT_BLOCK_SIZE,
};

/**
 * Measures the seed study's plan (see study.ts): raw milliseconds only. `entry`
 * registers the transfer registry in workers and children (default: the main module).
 */
export async function measureStudy(
  plan: TransferPlan,
  context: StudyContext,
  entry?: string | URL,
): Promise<TransferRaw> {
  const status = context.progress;
  const { runs, sweepRuns, streams, window } = plan;
  const skipped: string[] = [];
  const lab = await openLab(entry);
  try {
    const studyPath = `${lab.dir}/study-515`;
    await makeFile(studyPath, STUDY_BLOCKS * DEFAULT_BLOCK_SIZE);
    const modeMs = {} as TransferRaw["modeMs"];
    for (const mode of ["sequential", "async", "thread", "process"] as const) {
      const spec = { mode, streams, window, blockSize: DEFAULT_BLOCK_SIZE };
      // One warm-up run: thread and process modes pay their start-up (module load) once.
      await timeUpload(lab, studyPath, spec);
      modeMs[mode] = median(await repeat(runs, () => timeUpload(lab, studyPath, spec)));
      status(`515 blocks, ${mode}: ${round(modeMs[mode], 1)} ms`);
    }
    await rawCopy(lab, studyPath); // warm-up: the sink's first connection
    const rawMs = median(await repeat(runs, () => rawCopy(lab, studyPath)));
    const sweep = studySweepSizes();
    const sweepMs: number[] = [];
    for (const size of sweep) {
      const path = `${lab.dir}/sweep-${size}`;
      await makeFile(path, size);
      if (sweepMs.length === 0) {
        // Warm-up: the first uploads pay for compiling the hot paths on both ends.
        for (let i = 0; i < 3; i++) await timeUpload(lab, path, SEQUENTIAL_20480);
      }
      sweepMs.push(median(await repeat(sweepRuns, () => timeUpload(lab, path, SEQUENTIAL_20480))));
    }
    status(`size sweep: ${sweepMs.map((ms) => round(ms, 1)).join(", ")} ms`);
    if (context.scale === "smoke") {
      skipped.push("100 MB course-compatible upload: quick and full scales only");
    }
    const referenceMs: number[] = [];
    const pythonMs: (number | null)[] = [];
    let multi: TransferRaw["multi"] = null;
    const python = await startPythonPeer(lab.dir);
    if (python === null) skipped.push("Python STEP peer: needs python3");
    try {
      for (const [index, [size]] of plan.reference.entries()) {
        const path = `${lab.dir}/reference-${size}`;
        await makeFile(path, size);
        const count = size >= 1e8 ? 1 : runs;
        const time = (port?: number) =>
          repeat(count, () => timeUpload(lab, path, SEQUENTIAL_20480, undefined, port));
        referenceMs.push(median(await time()));
        pythonMs.push(python ? median(await time(python.port)) : null);
        if (index === plan.reference.length - 1) {
          // The study's "several connections help large files": the largest size, 2 streams.
          const threadSpec = { ...SEQUENTIAL_20480, mode: "thread" as const, streams };
          const threadMs = median(await repeat(count, () => timeUpload(lab, path, threadSpec)));
          multi = { size, sequentialMs: referenceMs[index], threadMs };
        }
        await Deno.remove(path);
      }
    } finally {
      await python?.close();
    }
    const big: { mode: string; ms: number }[] = [];
    let bigRawMs = 0;
    let bigRssMb: number | null = null;
    if (plan.bigBytes !== null) {
      const path = `${lab.dir}/big`;
      await makeFile(path, plan.bigBytes);
      bigRawMs = await rawCopy(lab, path);
      for (
        const [mode, spec] of [
          ["async, 1 MiB blocks, window 4", { mode: "async", streams: 1, window: 4 }],
          [`process x${streams}, 1 MiB blocks, window 4`, { mode: "process", streams, window: 4 }],
        ] as const
      ) {
        big.push({ mode, ms: await timeUpload(lab, path, { ...spec, blockSize: 1 << 20 }) });
        status(`1 GiB ${mode}: ${round(big[big.length - 1].ms)} ms`);
      }
      bigRssMb = serverPeakRssMb(lab);
      await Deno.remove(path);
    } else skipped.push("1 GiB upload (memory and ≥ 1 GB/s target): full scale only");
    skipped.push(
      "The course's own server file is not run (no licence to copy it); the Python STEP peer in " +
        "transfer/peers.ts re-implements its behaviour from the facts sheet, and §10's figures are quoted",
    );
    const ceiling = await defaultUploadCeiling(lab, plan.defaultUploadBytes, status);
    return {
      modeMs,
      rawMs,
      sweep,
      sweepMs,
      referenceMs,
      pythonMs,
      multi,
      ceiling,
      big,
      bigRawMs,
      bigRssMb,
      skipped,
      cpuPressure: cpuPressure(),
    };
  } finally {
    await lab.close();
  }
}
