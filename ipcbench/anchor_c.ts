/**
 * C anchors: the same ping-pong (a counter bounced and checked, payload copied
 * in and out) in C, under the same placement, for the transports C has: futex
 * (for the thread transports that sleep), spinning, pipes, TCP and Unix
 * sockets. The source is compiled with gcc into a temporary directory, run,
 * and removed; no binary is kept.
 *
 * @module
 */
import { errorMessage } from "../shared/errors.ts";
import { killAfter, type PreparedPeer, preparePeer } from "../shared/peer.ts";
import type { Pin } from "./system.ts";
import type { Transport } from "./transports.ts";

/** The C program: `pingpong MODE SIZE N CPU_A CPU_B` prints one JSON line. */
export const PINGPONG_C = `#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <mqueue.h>
#include <poll.h>
#include <fcntl.h>

static int size, n, warm = 1000;
static int cpu_a, cpu_b;
static double *samples;

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}
static void pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}
static void die(const char *what) { perror(what); exit(1); }
static void rd(int fd, char *buf) {
  for (int off = 0; off < size;) {
    ssize_t k = read(fd, buf + off, size - off);
    if (k <= 0) die("read");
    off += k;
  }
}
static void wr(int fd, char *buf) {
  for (int off = 0; off < size;) {
    ssize_t k = write(fd, buf + off, size - off);
    if (k <= 0) die("write");
    off += k;
  }
}
static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Shared memory between two threads or two processes: a request and a reply
   word and the message; waits by futex, eventfd or spinning. */
struct shm { _Atomic uint32_t req; char pad1[60]; _Atomic uint32_t rep; char pad2[60]; char data[]; };
static int pmode; /* 0 futex, 1 eventfd, 2 spin */
static int efd_req = -1, efd_rep = -1;
static void pwait(_Atomic uint32_t *addr, uint32_t val, int efd) {
  while (atomic_load(addr) == val) {
    if (pmode == 0) syscall(SYS_futex, addr, FUTEX_WAIT, val, NULL, NULL, 0);
    else if (pmode == 1) {
      struct pollfd p = {efd, POLLIN, 0};
      uint64_t c;
      if (poll(&p, 1, 10000) != 1 || read(efd, &c, 8) != 8) die("eventfd");
    }
  }
}
static void pwake(_Atomic uint32_t *addr, int efd) {
  if (pmode == 0) syscall(SYS_futex, addr, FUTEX_WAKE, 1, NULL, NULL, 0);
  else if (pmode == 1) { uint64_t one = 1; if (write(efd, &one, 8) != 8) die("eventfd"); }
}
/* The echo side: answers each request until the stop value. */
static void echo_shm(struct shm *m) {
  pin(cpu_b);
  char *local = malloc(size);
  uint32_t seq = 0;
  for (;;) {
    pwait(&m->req, seq, efd_req);
    seq = atomic_load(&m->req);
    if (seq == 0xffffffff) return;
    memcpy(local, m->data, size);
    (*(uint32_t *)local)++;
    memcpy(m->data, local, size);
    atomic_store(&m->rep, seq);
    pwake(&m->rep, efd_rep);
  }
}
/* The measuring side: n timed round trips after the warm-up, then the stop value. */
static double ping_shm(struct shm *m) {
  pin(cpu_a);
  char *msg = calloc(1, size);
  uint32_t seq = 0, value = 1;
  double start = 0;
  for (int i = -warm; i < n; i++) {
    if (i == 0) start = now_us();
    double t0 = now_us();
    *(uint32_t *)msg = value;
    memcpy(m->data, msg, size);
    atomic_store(&m->req, ++seq);
    pwake(&m->req, efd_req);
    pwait(&m->rep, seq - 1, efd_rep);
    memcpy(msg, m->data, size);
    if (*(uint32_t *)msg != value + 1) { fprintf(stderr, "bad value\\n"); exit(1); }
    value += 2;
    if (i >= 0) samples[i] = now_us() - t0;
  }
  double wall = now_us() - start;
  atomic_store(&m->req, 0xffffffff);
  pwake(&m->req, efd_req);
  return wall;
}
static void *echo_thread(void *arg) {
  echo_shm(arg);
  return NULL;
}
static double run_threads(void) {
  struct shm *m = calloc(1, sizeof(struct shm) + size);
  pthread_t t;
  pthread_create(&t, NULL, echo_thread, m);
  double wall = ping_shm(m);
  pthread_join(t, NULL);
  return wall;
}
static double run_pshm(pid_t *pid) {
  struct shm *m = mmap(NULL, sizeof(struct shm) + size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) die("mmap");
  if (pmode == 1) { efd_req = eventfd(0, 0); efd_rep = eventfd(0, 0); }
  *pid = fork();
  if (*pid == 0) {
    echo_shm(m);
    _exit(0);
  }
  double wall = ping_shm(m);
  waitpid(*pid, NULL, 0);
  *pid = 0;
  return wall;
}

/* The measuring side over a message transport: n timed round trips after the
   warm-up, each value checked. */
static double ping_messages(void (*send)(char *), void (*receive)(char *)) {
  pin(cpu_a);
  char *msg = calloc(1, size);
  uint32_t value = 1;
  double start = 0;
  for (int i = -warm; i < n; i++) {
    if (i == 0) start = now_us();
    double t0 = now_us();
    *(uint32_t *)msg = value;
    send(msg);
    receive(msg);
    if (*(uint32_t *)msg != value + 1) { fprintf(stderr, "bad value\\n"); exit(1); }
    value += 2;
    if (i >= 0) samples[i] = now_us() - t0;
  }
  return now_us() - start;
}

/* Processes: a connected pair of descriptors each way. */
static int ping_out, ping_in;
static void send_fd(char *msg) { wr(ping_out, msg); }
static void receive_fd(char *msg) { rd(ping_in, msg); }
static double run_fds(int out, int in, int child_in, int child_out, pid_t *pid) {
  *pid = fork();
  if (*pid == 0) {
    pin(cpu_b);
    char *buf = malloc(size);
    for (;;) {
      for (int off = 0; off < size;) {
        ssize_t k = read(child_in, buf + off, size - off);
        if (k <= 0) _exit(0);
        off += k;
      }
      (*(uint32_t *)buf)++;
      wr(child_out, buf);
    }
  }
  ping_out = out;
  ping_in = in;
  return ping_messages(send_fd, receive_fd);
}

/* Processes over two POSIX message queues (timed receives, as the Deno side). */
static ssize_t mq_recv(mqd_t q, char *buf) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 10;
  return mq_timedreceive(q, buf, size, NULL, &ts);
}
static mqd_t ping_qa, ping_qb;
static void send_mq(char *msg) { if (mq_send(ping_qa, msg, size, 0)) die("mq_send"); }
static void receive_mq(char *msg) { if (mq_recv(ping_qb, msg) != size) die("mq_receive"); }
static double run_mq(pid_t *pid) {
  char a[64], b[64];
  snprintf(a, sizeof a, "/ipcbench-c-%d-a", getpid());
  snprintf(b, sizeof b, "/ipcbench-c-%d-b", getpid());
  struct mq_attr attr = {.mq_maxmsg = 1, .mq_msgsize = size};
  mqd_t qa = mq_open(a, O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
  mqd_t qb = mq_open(b, O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
  mq_unlink(a);
  mq_unlink(b);
  if (qa == (mqd_t)-1 || qb == (mqd_t)-1) die("mq_open");
  *pid = fork();
  if (*pid == 0) {
    pin(cpu_b);
    char *buf = malloc(size);
    for (;;) {
      if (mq_recv(qa, buf) != size) _exit(0);
      (*(uint32_t *)buf)++;
      if (mq_send(qb, buf, size, 0)) _exit(1);
    }
  }
  ping_qa = qa;
  ping_qb = qb;
  return ping_messages(send_mq, receive_mq);
}

int main(int argc, char **argv) {
  if (argc < 6) { fprintf(stderr, "usage: %s futex|spin|pipe|tcp|unix|pfutex|peventfd|pspin|mq SIZE N CPU_A CPU_B\\n", argv[0]); return 2; }
  const char *mode = argv[1];
  size = atoi(argv[2]); n = atoi(argv[3]); cpu_a = atoi(argv[4]); cpu_b = atoi(argv[5]);
  if (size < 4 || n < 1) return 2;
  if (warm > n) warm = n;
  samples = malloc(sizeof(double) * n);
  double wall;
  pid_t pid = 0;
  if (!strcmp(mode, "futex") || !strcmp(mode, "spin")) {
    pmode = !strcmp(mode, "spin") ? 2 : 0;
    wall = run_threads();
  } else if (!strcmp(mode, "pipe")) {
    int a[2], b[2];
    if (pipe(a) || pipe(b)) die("pipe");
    wall = run_fds(a[1], b[0], a[0], b[1], &pid);
    close(a[1]);
  } else if (!strcmp(mode, "unix")) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) die("socketpair");
    wall = run_fds(sv[0], sv[0], sv[1], sv[1], &pid);
    shutdown(sv[0], SHUT_RDWR);
  } else if (!strcmp(mode, "tcp")) {
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (bind(ls, (void *)&addr, len) || listen(ls, 1) || getsockname(ls, (void *)&addr, &len)) die("listen");
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (void *)&addr, len)) die("connect");
    int s = accept(ls, NULL, NULL);
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    wall = run_fds(s, s, c, c, &pid);
    shutdown(s, SHUT_RDWR);
  } else if (!strcmp(mode, "pfutex") || !strcmp(mode, "peventfd") || !strcmp(mode, "pspin")) {
    pmode = !strcmp(mode, "pfutex") ? 0 : !strcmp(mode, "peventfd") ? 1 : 2;
    wall = run_pshm(&pid);
  } else if (!strcmp(mode, "mq")) {
    wall = run_mq(&pid);
  } else return 2;
  if (pid > 0) { kill(pid, SIGKILL); waitpid(pid, NULL, 0); }
  qsort(samples, n, sizeof(double), cmp);
  printf("{\\"mode\\":\\"%s\\",\\"size\\":%d,\\"n\\":%d,\\"p50Us\\":%.3f,\\"p99Us\\":%.3f,\\"roundTripsPerSec\\":%.0f}\\n",
         mode, size, n, samples[n / 2], samples[(int)(n * 0.99)], n / (wall / 1e6));
  return 0;
}
`;

/** The C mode that anchors each transport (`null`: none). */
export const C_MODE: Readonly<Record<Transport, string | null>> = {
  "async": null,
  "postmessage": "futex",
  "channel-sab": "futex",
  "messagechannel": "futex",
  "atomics-wait": "futex",
  "sab-spin": "spin",
  "waitasync": "futex",
  "pipes": "pipe",
  // The child channel's target is C pipes, whatever carries it.
  "channel-unix": "pipe",
  "channel-shm": "pipe",
  "tcp": "tcp",
  "unix": "unix",
  "fifo": "pipe",
  "udp": null,
  "shm-futex": "pfutex",
  "shm-eventfd": "peventfd",
  "shm-spin": "pspin",
  "mq": "mq",
};

/** One C measurement. */
export interface CAnchor {
  mode: string;
  size: number;
  n: number;
  p50Us: number;
  p99Us: number;
  roundTripsPerSec: number;
}

/** A compiled anchor program; `close()` removes it. */
export interface CAnchorRunner {
  /** Measures (cached per mode, size and placement); `null` when the transport has no anchor. */
  measure(transport: Transport, size: number, pin: Pin, cpus: number[], n: number): Promise<
    CAnchor | null
  >;
  close(): Promise<void>;
}

/** Compiles the anchor; returns why not when gcc is missing or fails. */
export async function compileCAnchor(): Promise<CAnchorRunner | { skipped: string }> {
  let program: PreparedPeer;
  try {
    program = await preparePeer({
      name: "pingpong",
      language: "c",
      source: PINGPONG_C,
      cflags: ["-pthread"],
    });
  } catch (error) {
    return { skipped: `C anchors: ${errorMessage(error)}` };
  }
  const close = program.close;
  const cache = new Map<string, Promise<CAnchor | null>>();
  return {
    measure(transport, size, pin, cpus, n) {
      const mode = C_MODE[transport];
      if (mode === null || ((mode === "spin" || mode === "pspin") && pin === "same")) {
        return Promise.resolve(null);
      }
      const [a, b] = pin === "none"
        ? [-1, -1]
        : pin === "same"
        ? [cpus[0], cpus[0]]
        : [cpus[0], cpus[1]];
      const key = `${mode} ${size} ${a} ${b} ${n}`;
      let result = cache.get(key);
      if (!result) {
        result = (async () => {
          const child = new Deno.Command(program.argv[0], {
            args: [mode, String(size), String(n), String(a), String(b)],
            stdout: "piped",
            stderr: "piped",
          }).spawn();
          // A C run is bounded; a hang (a broken kernel feature) must not hang the bench.
          const cancel = killAfter(child, 60_000);
          const output = await child.output().finally(cancel);
          if (!output.success) return null;
          return JSON.parse(new TextDecoder().decode(output.stdout)) as CAnchor;
        })();
        cache.set(key, result);
      }
      return result;
    },
    close,
  };
}
