/*
 * B7's baseline: a minimal qtest client in C, the same protocol and the same machine as the
 * QEMU backend (scripts/bench/b7.ts compiles it with `cc -O2` at bench time).
 *
 *   qtest-client <qemu-binary> <n> <warmup>     (QEMU_MODULE_DIR from the environment)
 *
 * It starts its own QEMU as the backend does (q35, -accel qtest, -qtest pipe:<base> over two
 * FIFOs, guest RAM in a shared /dev/shm file, a QMP socket nobody connects to, edu behind a
 * pcie-root-port at 00:02.0), does the minimal firmware work over 0xcf8/0xcfc (root port bus
 * numbers and memory window, edu's BAR0 at 0xc0000000, memory decoding on), reads edu's ID
 * register, then times <n> `readl` round trips of it with clock_gettime, one by one, after
 * <warmup> untimed ones. Prints one JSON line: start-up (fork to the first reply, fork to the
 * first ID read) and the per-read median, p99 and mean in microseconds. QEMU gets SIGTERM at
 * the end and PR_SET_PDEATHSIG kills it should the client die first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BAR0 0xc0000000u
#define EDU_ID 0x010000edu

static int to_qemu = -1, from_qemu = -1;
static char buf[1 << 16];
static size_t start = 0, end = 0;
static char line[4096];

static void die(const char *what) {
  fprintf(stderr, "qtest-client: %s%s%s\n", what, errno ? ": " : "", errno ? strerror(errno) : "");
  exit(1);
}

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* The next line from QEMU into `line` (without its newline). */
static void next_line(void) {
  for (;;) {
    char *nl = memchr(buf + start, '\n', end - start);
    if (nl != NULL) {
      size_t n = (size_t)(nl - (buf + start));
      if (n >= sizeof line) die("overlong line");
      memcpy(line, buf + start, n);
      line[n] = 0;
      start += n + 1;
      return;
    }
    if (start > 0) {
      memmove(buf, buf + start, end - start);
      end -= start;
      start = 0;
    }
    if (end == sizeof buf) die("line too long");
    ssize_t r = read(from_qemu, buf + end, sizeof buf - end);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die("QEMU closed the channel");
    end += (size_t)r;
  }
}

/* One request, one reply: IRQ lines are skipped; anything but OK is fatal. */
static const char *request(const char *text, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t w = write(to_qemu, text + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die("write to QEMU");
    done += (size_t)w;
  }
  do next_line();
  while (strncmp(line, "IRQ ", 4) == 0);
  if (strncmp(line, "OK", 2) != 0) {
    errno = 0;
    fprintf(stderr, "qtest-client: %.*s -> %s\n", (int)len - 1, text, line);
    exit(1);
  }
  return line;
}

static uint32_t value_of(const char *reply) {
  return (uint32_t)strtoull(reply + 3, NULL, 16);
}

static uint32_t readl(uint32_t addr) {
  char req[64];
  int n = snprintf(req, sizeof req, "readl 0x%x\n", addr);
  return value_of(request(req, (size_t)n));
}

static void outl(uint32_t port, uint32_t value) {
  char req[64];
  int n = snprintf(req, sizeof req, "outl 0x%x 0x%x\n", port, value);
  request(req, (size_t)n);
}

static uint32_t inl(uint32_t port) {
  char req[64];
  int n = snprintf(req, sizeof req, "inl 0x%x\n", port);
  return value_of(request(req, (size_t)n));
}

static uint32_t cfg_addr(int bus, int dev, int reg) {
  return 0x80000000u | ((uint32_t)bus << 16) | ((uint32_t)dev << 11) | ((uint32_t)reg & 0xfc);
}
static uint32_t cfg_read(int bus, int dev, int reg) {
  outl(0xcf8, cfg_addr(bus, dev, reg));
  return inl(0xcfc);
}
static void cfg_write(int bus, int dev, int reg, uint32_t value) {
  outl(0xcf8, cfg_addr(bus, dev, reg));
  outl(0xcfc, value);
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static char dir[] = "/tmp/b7-qtest-XXXXXX";
static char shm[64], base[128], fifo_in[160], fifo_out[160], qmp[160];

static void cleanup(void) {
  unlink(fifo_in);
  unlink(fifo_out);
  unlink(qmp);
  rmdir(dir);
  unlink(shm);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: qtest-client <qemu-binary> <n> <warmup>\n");
    return 2;
  }
  const char *binary = argv[1];
  long n = atol(argv[2]), warmup = atol(argv[3]);
  if (n < 0 || warmup < 0) return 2;
  /* A QEMU that never opens its FIFOs must not hang the bench. */
  alarm(60);

  double t0 = now_ns();
  if (mkdtemp(dir) == NULL) die("mkdtemp");
  snprintf(base, sizeof base, "%s/qtest", dir);
  snprintf(fifo_in, sizeof fifo_in, "%s.in", base);
  snprintf(fifo_out, sizeof fifo_out, "%s.out", base);
  snprintf(qmp, sizeof qmp, "%s/qmp.sock", dir);
  snprintf(shm, sizeof shm, "/dev/shm/b7-qtest-%d", (int)getpid());
  atexit(cleanup);
  if (mkfifo(fifo_in, 0600) != 0 || mkfifo(fifo_out, 0600) != 0) die("mkfifo");

  char qtest_arg[200], chardev[220], object[200];
  snprintf(qtest_arg, sizeof qtest_arg, "pipe:%s", base);
  snprintf(chardev, sizeof chardev, "socket,path=%s,server=on,wait=off,id=qmp0", qmp);
  snprintf(object, sizeof object, "memory-backend-file,id=ram0,size=64M,mem-path=%s,share=on", shm);
  char *args[] = {
    (char *)binary,
    "-machine", "q35,memory-backend=ram0", "-accel", "qtest",
    "-qtest", qtest_arg, "-qtest-log", "/dev/null",
    "-chardev", chardev, "-mon", "chardev=qmp0,mode=control",
    "-display", "none", "-nodefaults", "-m", "64M", "-object", object,
    "-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
    "-device", "pcie-root-port,id=rp0,bus=pcie.0,chassis=1,slot=1,addr=0x2",
    "-device", "edu,id=dev0,bus=rp0",
    NULL
  };
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 1);
    execv(binary, args);
    _exit(127);
  }
  to_qemu = open(fifo_in, O_WRONLY);
  if (to_qemu < 0) die("open qtest.in");
  from_qemu = open(fifo_out, O_RDONLY);
  if (from_qemu < 0) die("open qtest.out");

  /* Firmware, minimally: root port 00:02.0 -> bus 1, window 0xc0000000-0xc00fffff; edu at 01:00.0. */
  uint32_t port_id = cfg_read(0, 2, 0x00);
  double t_first = now_ns();
  if (port_id != 0x000c1b36u) { errno = 0; fprintf(stderr, "00:02.0 is %08x, not a pcie-root-port\n", port_id); return 1; }
  cfg_write(0, 2, 0x18, 0x00010100u);          /* primary 0, secondary 1, subordinate 1 */
  cfg_write(0, 2, 0x1c, 0x000000f0u);          /* I/O window off (base > limit) */
  cfg_write(0, 2, 0x20, (BAR0 >> 16) | (BAR0 & 0xfff00000u)); /* memory base = limit = 0xc00 */
  cfg_write(0, 2, 0x24, 0x0000fff0u);          /* prefetchable window off */
  cfg_write(0, 2, 0x04, 0x00000006u);          /* memory decoding, bus master */
  uint32_t edu_id = cfg_read(1, 0, 0x00);
  if (edu_id != 0x11e81234u) { errno = 0; fprintf(stderr, "01:00.0 is %08x, not edu\n", edu_id); return 1; }
  cfg_write(1, 0, 0x10, BAR0);
  cfg_write(1, 0, 0x04, 0x00000006u);
  uint32_t id = readl(BAR0);
  double t_read = now_ns();
  if (id != EDU_ID) { errno = 0; fprintf(stderr, "edu's ID register reads %08x\n", id); return 1; }

  for (long i = 0; i < warmup; i++) readl(BAR0);
  double *samples = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
  if (samples == NULL) die("malloc");
  uint32_t check = 0;
  double sum = 0;
  for (long i = 0; i < n; i++) {
    double a = now_ns();
    check |= readl(BAR0) ^ EDU_ID;
    double b = now_ns();
    samples[i] = b - a;
    sum += b - a;
  }
  if (check != 0) { errno = 0; fprintf(stderr, "edu's ID register changed\n"); return 1; }
  double median = 0, p99 = 0, mean = 0;
  if (n > 0) {
    qsort(samples, (size_t)n, sizeof(double), cmp);
    median = n % 2 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
    p99 = samples[(size_t)((double)(n - 1) * 0.99)];
    mean = sum / (double)n;
  }
  printf("{\"n\":%ld,\"startFirstReplyUs\":%.1f,\"startFirstReadUs\":%.1f,\"medianUs\":%.3f,\"p99Us\":%.3f,\"meanUs\":%.3f}\n",
         n, (t_first - t0) / 1e3, (t_read - t0) / 1e3, median / 1e3, p99 / 1e3, mean / 1e3);
  fflush(stdout);

  kill(pid, SIGTERM);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  return 0;
}
