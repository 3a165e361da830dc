/**
 * The measuring side of the transports that join two processes through the
 * kernel's byte streams and datagrams: TCP, Unix sockets, UDP and FIFOs. The echo
 * side is in transports.ts (the `ipcbench.echo` service).
 *
 * @module
 */
import type { Spawned } from "../shared/runtime.ts";
import {
  type EchoInit,
  type EchoReport,
  type Link,
  type LinkOptions,
  readFull,
  writeFull,
} from "./transports.ts";

/** What {@linkcode openSocketLink} needs from transports.ts. */
export interface SocketLinkDeps {
  startEcho(options: LinkOptions, extra: Partial<EchoInit>): Promise<Spawned>;
  finishSpawned(spawned: Spawned, timeoutMs: number): Promise<EchoReport>;
  peerEnded(spawned: Spawned, error?: unknown): Error;
  withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T>;
}

/** A byte stream both ways: a socket, or a pair of pipes. */
interface Duplex {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

function socketLink(
  spawned: Spawned,
  conn: Duplex,
  options: LinkOptions,
  deps: SocketLinkDeps,
): Link {
  let failure: Error | null = null;
  let finishing = false;
  const abort = (error: Error) => {
    failure ??= error;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  };
  spawned.done.then(
    () => finishing || abort(deps.peerEnded(spawned)),
    (error) => abort(deps.peerEnded(spawned, error)),
  );
  return {
    touch: false,
    where: spawned.where,
    async roundTrip(message) {
      try {
        await writeFull(conn, message);
        if (!(await readFull(conn, message))) {
          throw new Error(`${spawned.where} closed the connection`);
        }
      } catch (error) {
        throw failure ?? error;
      }
      return message;
    },
    abort,
    finish() {
      finishing = true;
      try {
        conn.close();
      } catch {
        // Already closed by an abort.
      }
      return deps.finishSpawned(spawned, options.timeoutMs);
    },
    kill() {
      abort(new Error("killed"));
      spawned.kill();
    },
  };
}

/** Starts the echo child of tcp, unix, udp or fifo and returns the measuring side's link. */
export async function openSocketLink(options: LinkOptions, deps: SocketLinkDeps): Promise<Link> {
  const t = options.transport;
  const { startEcho, withTimeout } = deps;
  if (t === "tcp" || t === "unix") {
    let dir: string | undefined;
    const listener = t === "tcp" ? Deno.listen({ hostname: "127.0.0.1", port: 0 }) : Deno.listen({
      transport: "unix",
      path: `${(dir = await Deno.makeTempDir({ prefix: "ipcbench-" }))}/echo.sock`,
    });
    try {
      const extra: Partial<EchoInit> = t === "tcp"
        ? { port: (listener.addr as Deno.NetAddr).port }
        : { path: (listener.addr as Deno.UnixAddr).path };
      const spawned = await startEcho(options, extra);
      let conn: Deno.Conn;
      try {
        conn = await withTimeout<Deno.Conn>(
          listener.accept() as Promise<Deno.Conn>,
          options.timeoutMs,
          `${spawned.where} to connect`,
        );
      } catch (error) {
        spawned.kill();
        throw error;
      }
      if (t === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
      return socketLink(spawned, conn, options, deps);
    } finally {
      listener.close();
      if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
  if (t === "udp") {
    const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    try {
      const port = (socket.addr as Deno.NetAddr).port;
      const spawned = await startEcho(options, { port });
      let peer: Deno.Addr;
      try {
        [, peer] = await withTimeout(
          socket.receive(),
          options.timeoutMs,
          `${spawned.where} to say hello`,
        );
      } catch (error) {
        spawned.kill();
        throw error;
      }
      const buf = new Uint8Array(options.size + 1);
      let closed = false;
      const duplex: Duplex = {
        // One datagram is one whole message: a short or long one is a bad message.
        async read(p) {
          const [data] = await socket.receive(buf);
          if (data.length !== p.length) {
            throw new Error(`a ${data.length}-byte datagram where ${p.length} were sent`);
          }
          p.set(data);
          return data.length;
        },
        write: (p) => socket.send(p, peer),
        close() {
          if (closed) return;
          closed = true;
          // An empty datagram ends the echo loop; then nothing more arrives here.
          socket.send(new Uint8Array(0), peer).catch(() => {}).finally(() => socket.close());
        },
      };
      return socketLink(spawned, duplex, options, deps);
    } catch (error) {
      socket.close();
      throw error;
    }
  }
  if (t === "fifo") {
    const dir = await Deno.makeTempDir({ prefix: "ipcbench-" });
    try {
      for (const name of ["to-echo", "from-echo"]) {
        const made = await new Deno.Command("mkfifo", {
          args: ["-m", "600", `${dir}/${name}`],
          stderr: "piped",
        }).output();
        if (!made.success) {
          throw new Error(
            `Cannot create a FIFO: mkfifo failed (${new TextDecoder().decode(made.stderr).trim()})`,
          );
        }
      }
      const spawned = await startEcho(options, { path: dir });
      let duplex: Duplex;
      try {
        // Same order as the echo side, so neither open waits for the other forever.
        const output = await withTimeout(
          Deno.open(`${dir}/to-echo`, { write: true }),
          options.timeoutMs,
          `${spawned.where} to open its FIFO`,
        );
        const input = await withTimeout(
          Deno.open(`${dir}/from-echo`, { read: true }),
          options.timeoutMs,
          `${spawned.where} to open its FIFO`,
        );
        duplex = {
          read: (p) => input.read(p),
          write: (p) => output.write(p),
          close() {
            output.close();
            input.close();
          },
        };
      } catch (error) {
        spawned.kill();
        throw error;
      }
      return socketLink(spawned, duplex, options, deps);
    } finally {
      // Both ends are open (or the run failed): the names are no longer needed.
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
  throw new Error(`transport '${t}' is not a socket transport`);
}
