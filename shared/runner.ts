/**
 * The task runner: runs a named task over many inputs in any execution mode,
 * yielding results as they complete.
 *
 * - `sequential`: one input at a time in this isolate.
 * - `async`: `concurrency` inputs in flight on this isolate's event loop.
 * - `thread`: `workers` Web Workers, each with `concurrency` in flight.
 * - `process`: `workers` child processes, each with `concurrency` in flight.
 *
 * Tasks are declared in the program's registry (shared/registry.ts), a module
 * the entry loads, so that workers and children (which load the entry) know them too.
 * Inputs and results must be JSON-serialisable. Messages are batched: many
 * inputs go to a worker, and many results come back, in one message.
 *
 * @module
 */
import type { Mode } from "./mode.ts";
import { defineService, describeWhere, spawn, type Spawned } from "./runtime.ts";
import {
  type ErrorInfo,
  fromErrorInfo,
  TaskError,
  toErrorInfo,
  WorkerCrashError,
} from "./errors.ts";

/** Context a task receives. */
export interface TaskContext {
  /** Aborted when the run stops (abort, error, or the consumer stopped reading). */
  signal: AbortSignal;
  /** Index of the worker or child running it (0 in this isolate). */
  worker: number;
  pid: number;
  /** e.g. `thread worker 2 (pid 1234)`. */
  where: string;
}

/** A task: takes one input, returns one result. */
export type TaskFn<I, O> = (input: I, context: TaskContext) => O | Promise<O>;

/** A registered task, usable as the first argument of {@linkcode runTasks}. */
export interface Task<I, O> {
  readonly name: string;
  readonly fn: TaskFn<I, O>;
}

const tasks = new Map<string, TaskFn<unknown, unknown>>();

/**
 * Registers a task by name for the runtime's workers and children. Programs
 * declare their tasks in a registry (`defineRegistry` in
 * shared/registry.ts calls this) and look them up with `taskOf`, so that a
 * missing task is a type error; shared/ itself calls it for its own tasks.
 */
export function defineTask<I, O>(name: string, fn: TaskFn<I, O>): Task<I, O> {
  if (tasks.has(name) && tasks.get(name) !== fn) throw new Error(`task '${name}' is defined twice`);
  tasks.set(name, fn as TaskFn<unknown, unknown>);
  return { name, fn };
}

/** Options for {@linkcode runTasks}. */
export interface RunOptions {
  mode: Mode;
  /** Workers or children for `thread` and `process` (default 2). */
  workers?: number;
  /** Tasks in flight per worker, or in this isolate for `async` (default 1). */
  concurrency?: number;
  /** Stops everything: workers are terminated, children killed, the run rejects. */
  signal?: AbortSignal;
  /** Module that registers the task and calls `enterRole` (default: the main module). */
  entry?: string | URL;
  /** Yield failed tasks as results instead of stopping the run at the first. */
  continueOnError?: boolean;
  /** Largest number of inputs sent to a worker in one message (default 64). */
  batch?: number;
  /** Called once per worker or child when it has started, with its start-up time. */
  onWorkerReady?: (info: { id: number; pid: number; startMs: number }) => void;
}

/** One completed task. */
export type TaskOutcome<I, O> =
  & {
    input: I;
    /** Position of the input in the input sequence. */
    index: number;
    worker: number;
    pid: number;
    /** Epoch milliseconds (sub-millisecond) when the task started and ended. */
    startedAt: number;
    endedAt: number;
  }
  & ({ ok: true; value: O } | { ok: false; error: Error });

interface WireTask {
  i: number;
  input: unknown;
}

interface WireResult {
  i: number;
  ok: boolean;
  value?: unknown;
  error?: ErrorInfo;
  s: number;
  e: number;
}

function epoch(): number {
  return performance.timeOrigin + performance.now();
}

/** Worker side of the runner: runs batches of tasks with a concurrency limit. */
defineService("netconc.tasks", async (channel, init, info) => {
  const { task, concurrency } = init as { task: string; concurrency: number };
  const fn = tasks.get(task);
  if (!fn) throw new Error(`no task named '${task}' is registered in this program`);
  const controller = new AbortController();
  const context: TaskContext = {
    signal: controller.signal,
    worker: info.id,
    pid: info.pid,
    where: info.where,
  };
  const queue: WireTask[] = [];
  let running = 0;
  let ended = false;
  let outbox: WireResult[] = [];
  let flushScheduled = false;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const flush = () => {
    flushScheduled = false;
    if (outbox.length === 0) return;
    channel.send(outbox);
    outbox = [];
  };
  const pump = () => {
    while (running < concurrency && queue.length > 0) {
      const item = queue.shift()!;
      running++;
      const s = epoch();
      Promise.resolve()
        .then(() => fn(item.input, context))
        .then(
          (value) => outbox.push({ i: item.i, ok: true, value, s, e: epoch() }),
          (error) =>
            outbox.push({ i: item.i, ok: false, error: toErrorInfo(error), s, e: epoch() }),
        )
        .finally(() => {
          running--;
          // Send at once when idle or when a batch is full; otherwise wait a tick so
          // results that finish together travel in one message.
          if (running === 0 && queue.length === 0) flush();
          else if (outbox.length >= 64) flush();
          else if (!flushScheduled) {
            flushScheduled = true;
            setTimeout(flush, 0);
          }
          pump();
        });
    }
    if (ended && running === 0 && queue.length === 0) {
      flush();
      finish();
    }
  };
  channel.listen((message) => {
    queue.push(...(message.data as WireTask[]));
    pump();
  });
  (async () => {
    // `receive` returns null once the parent ends the channel.
    while ((await channel.receive()) !== null);
    ended = true;
    pump();
  })();
  await finished;
  controller.abort();
  return null;
});

async function* inputsOf<I>(inputs: Iterable<I> | AsyncIterable<I>): AsyncGenerator<I> {
  yield* inputs as AsyncIterable<I>;
}

/**
 * Runs `task` over `inputs` in the chosen mode and yields outcomes as they
 * complete (not in input order: each carries its `input` and `index`).
 *
 * @throws {TaskError} when a task throws (unless `continueOnError`), with its input and where it ran.
 * @throws {WorkerCrashError} when a worker or child dies with tasks in flight.
 * @throws the signal's reason when aborted.
 */
export async function* runTasks<I, O>(
  task: Task<I, O> | string,
  inputs: Iterable<I> | AsyncIterable<I>,
  options: RunOptions,
): AsyncGenerator<TaskOutcome<I, O>> {
  const name = typeof task === "string" ? task : task.name;
  const concurrency = Math.max(1, options.concurrency ?? 1);
  if (options.mode === "sequential" || options.mode === "async") {
    const limit = options.mode === "sequential" ? 1 : concurrency;
    yield* runLocal<I, O>({ name, inputs, limit, options });
  } else {
    yield* runPool<I, O>({ name, inputs, limit: concurrency, options });
  }
}

/** Collects every outcome of {@linkcode runTasks} into an array ordered by input index. */
export async function runAll<I, O>(
  task: Task<I, O> | string,
  inputs: Iterable<I> | AsyncIterable<I>,
  options: RunOptions,
): Promise<TaskOutcome<I, O>[]> {
  const out: TaskOutcome<I, O>[] = [];
  for await (const outcome of runTasks(task, inputs, options)) out.push(outcome);
  return out.sort((a, b) => a.index - b.index);
}

/** One run of a task: its name, its inputs, how many in flight (per isolate), and the options. */
interface TaskRun<I> {
  name: string;
  inputs: Iterable<I> | AsyncIterable<I>;
  limit: number;
  options: RunOptions;
}

async function* runLocal<I, O>(
  { name, inputs, limit, options }: TaskRun<I>,
): AsyncGenerator<TaskOutcome<I, O>> {
  const fn = tasks.get(name) as TaskFn<I, O> | undefined;
  if (!fn) throw new Error(`no task named '${name}' is registered in this program`);
  const controller = new AbortController();
  const signal = options.signal
    ? AbortSignal.any([options.signal, controller.signal])
    : controller.signal;
  const where = describeWhere("main", 0, Deno.pid);
  const context: TaskContext = { signal, worker: 0, pid: Deno.pid, where };
  const iterator = inputsOf(inputs);
  // Completed tasks wait in a queue; one wake-up per completion keeps the cost per
  // task constant whatever the number in flight.
  const done: TaskOutcome<I, O>[] = [];
  let head = 0;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const onAbort = () => notify();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  let running = 0;
  let index = 0;
  let exhausted = false;
  const start = (input: I, key: number) => {
    running++;
    const startedAt = epoch();
    const finish = (result: { ok: true; value: O } | { ok: false; error: Error }) => {
      running--;
      done.push({
        input,
        index: key,
        worker: 0,
        pid: Deno.pid,
        startedAt,
        endedAt: epoch(),
        ...result,
      });
      notify();
    };
    try {
      const value = fn(input, context);
      if (value instanceof Promise) {
        value.then(
          (v) => finish({ ok: true, value: v }),
          (error) =>
            finish({ ok: false, error: error instanceof Error ? error : new Error(String(error)) }),
        );
      } else finish({ ok: true, value });
    } catch (error) {
      finish({ ok: false, error: error instanceof Error ? error : new Error(String(error)) });
    }
  };
  try {
    for (;;) {
      options.signal?.throwIfAborted();
      // Also stop starting once `limit` results wait: a task that finishes
      // synchronously never counts as running, and the queue must stay bounded.
      while (!exhausted && running < limit && done.length - head < limit) {
        const next = await iterator.next();
        if (next.done) {
          exhausted = true;
          break;
        }
        start(next.value, index++);
        options.signal?.throwIfAborted();
      }
      while (head < done.length) {
        const outcome = done[head++];
        if (head === done.length) {
          // Reset rather than shift: shift() is O(n) per item on a long queue.
          done.length = 0;
          head = 0;
        }
        if (!outcome.ok && !options.continueOnError) {
          throw new TaskError(name, outcome.input, where, outcome.error);
        }
        yield outcome;
      }
      if (exhausted && running === 0) return;
      if (running >= limit || exhausted) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (head < done.length || options.signal?.aborted) notify();
        });
      }
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    controller.abort();
    await iterator.return?.(undefined);
  }
}

async function* runPool<I, O>(
  { name, inputs, limit: concurrency, options }: TaskRun<I>,
): AsyncGenerator<TaskOutcome<I, O>> {
  const kind = options.mode as "thread" | "process";
  const count = Math.max(1, options.workers ?? 2);
  const batchSize = Math.max(1, options.batch ?? 64);
  const workers: Spawned[] = [];
  const inFlight: Map<number, I>[] = [];
  const results: TaskOutcome<I, O>[] = [];
  let failure: unknown = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const fail = (error: unknown) => {
    failure ??= error;
    notify();
  };
  const onAbort = () => fail(options.signal!.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const iterator = inputsOf(inputs);
  try {
    options.signal?.throwIfAborted();
    const started = await Promise.allSettled(
      Array.from({ length: count }, async (_, id) => {
        const t0 = performance.now();
        const spawned = await spawn(kind, {
          service: "netconc.tasks",
          init: { task: name, concurrency },
          id,
          entry: options.entry,
        });
        options.onWorkerReady?.({ id, pid: spawned.pid, startMs: performance.now() - t0 });
        return spawned;
      }),
    );
    for (const result of started) if (result.status === "fulfilled") workers.push(result.value);
    const firstFailure = started.find((result) => result.status === "rejected");
    if (firstFailure) throw (firstFailure as PromiseRejectedResult).reason;
    workers.sort((a, b) => a.id - b.id);
    for (const worker of workers) {
      const pending = new Map<number, I>();
      inFlight.push(pending);
      worker.channel.listen((message) => {
        for (const result of message.data as WireResult[]) {
          const input = pending.get(result.i) as I;
          pending.delete(result.i);
          const base = {
            input,
            index: result.i,
            worker: worker.id,
            pid: worker.pid,
            startedAt: result.s,
            endedAt: result.e,
          };
          if (result.ok) results.push({ ...base, ok: true, value: result.value as O });
          else {
            const error = fromErrorInfo(result.error!);
            if (!options.continueOnError) fail(new TaskError(name, input, worker.where, error));
            results.push({ ...base, ok: false, error });
          }
        }
        notify();
      });
      worker.done.then(
        () => {
          if (pending.size > 0) {
            fail(new WorkerCrashError(worker.where, `ended with ${pending.size} tasks unfinished`));
          }
        },
        (error) => {
          const first = pending.values().next();
          const detail = first.done ? "" : ` while running input ${JSON.stringify(first.value)}`;
          const reason = error instanceof Error ? error.message : String(error);
          fail(
            new WorkerCrashError(
              worker.where,
              `${reason.replace(`${worker.where} died: `, "")}${detail}`,
            ),
          );
        },
      );
    }
    let index = 0;
    let exhausted = false;
    for (;;) {
      if (failure !== null) throw failure;
      // Fill every worker up to its concurrency, in batches.
      let sent = false;
      while (!exhausted) {
        let target = -1;
        let least = Infinity;
        for (let w = 0; w < workers.length; w++) {
          if (inFlight[w].size < concurrency && inFlight[w].size < least) {
            least = inFlight[w].size;
            target = w;
          }
        }
        if (target === -1) break;
        const room = Math.min(concurrency - inFlight[target].size, batchSize);
        const batch: WireTask[] = [];
        while (batch.length < room) {
          const next = await iterator.next();
          if (next.done) {
            exhausted = true;
            break;
          }
          inFlight[target].set(index, next.value);
          batch.push({ i: index++, input: next.value });
        }
        if (batch.length > 0) {
          workers[target].channel.send(batch);
          sent = true;
        }
        if (failure !== null) throw failure;
      }
      while (results.length > 0) {
        const outcome = results.shift()!;
        if (!outcome.ok && !options.continueOnError) throw failure ?? outcome.error;
        yield outcome;
      }
      const busy = inFlight.some((pending) => pending.size > 0);
      if (exhausted && !busy) break;
      if (!sent || busy) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (results.length > 0 || failure !== null) notify();
        });
      }
    }
    for (const worker of workers) worker.end();
    await Promise.all(workers.map((worker) => worker.done.catch(() => {})));
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    for (const worker of workers) worker.kill();
    await Promise.all(workers.map((worker) => worker.done.catch(() => {})));
    await iterator.return?.(undefined);
  }
}
