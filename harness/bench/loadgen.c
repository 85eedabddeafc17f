/*
 * echolab's load generator: drives an echo server over loopback and checks every byte it gets back.
 * One thread, non-blocking sockets, epoll, closed loop: a new request leaves only when the last
 * one has fully come back, so the rate measured is the server's, not a queue's.
 *
 *   loadgen rtt    HOST SIZE SECONDS PORT...  one connection per server, SIZE-byte round trips back to
 *                                             back, the servers taking turns: latency percentiles each
 *   loadgen stream HOST PORT SECONDS          one connection, bulk both ways: echoed bytes/s, byte-exact
 *   loadgen rps    HOST PORT CONNS SIZE SECONDS [hold]
 *                                             CONNS connections, SIZE-byte requests: requests/s
 *
 * Protocol with the caller, one line each on stdout: "ready" when the connections are up and
 * warmed up (the measured window starts), "done" when the window ends (with "hold", it then waits
 * for a line on stdin before closing, so the caller can read the server's memory with every
 * connection still open), and last a JSON object with the figures, including the generator's own
 * CPU use over the window (getrusage), so the caller can tell whether the generator was the limit.
 * Exit status 0, or 1 with {"error": ...} on the last line.
 *
 *   cc -O2 -Wall -Wextra -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WARMUP 0.1           /* seconds before the measured window (stream, rps) */
#define DRAIN_IDLE 2.0       /* after the window: give up on the echo's tail when it stalls this long */
/* The stream is a random pattern repeated with a prime period, small enough to stay in cache (the
 * check must not cost the generator more than the copies do). A block dropped or repeated shows as
 * a mismatch, or else in the byte count checked at the end. */
#define PATTERN_LEN 131071
#define STREAM_CHUNK 131072 /* bytes per send() and per recv() */
#define MAX_SAMPLES 4000000
#define BLOCK 400     /* round trips per server per turn (rtt) */
#define BLOCK_WARM 40 /* of which the first are not counted */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static void fail(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '"' || *p == '\\')
            *p = '\'';
    printf("{\"error\": \"%s\"}\n", msg);
    fflush(stdout);
    exit(1);
}

static void mark(const char *what)
{
    puts(what);
    fflush(stdout);
}

static int connect_to(const char *host, int port, int nonblocking)
{
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM | (nonblocking ? SOCK_NONBLOCK : 0), 0), one = 1;

    if (fd < 0)
        fail("socket: %s", strerror(errno));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        fail("not an IPv4 address: %s", host);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
        fail("connect %s:%d: %s", host, port, strerror(errno));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Blocking send/recv of exactly n bytes. */
static void send_exact(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            fail("send: %s", strerror(errno));
        p += w, n -= (size_t)w;
    }
}

static void recv_exact(int fd, char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            fail("the server closed the connection mid-echo");
        if (r < 0)
            fail("recv: %s", strerror(errno));
        p += r, n -= (size_t)r;
    }
}

static void fill_random(char *buf, size_t n, uint64_t seed)
{
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (char)(x >> 24);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double q)
{
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

/* One connection to each server, blocking, SIZE-byte round trips back to back. The servers take
 * turns in blocks of BLOCK round trips (some milliseconds each), so all of them meet the same
 * moments of the machine and a drift cannot favour one; the first BLOCK_WARM of each block, when
 * the server has just woken from its idle turn, are not counted. */
static void run_rtt(const char *host, int nports, char **ports, size_t size, double seconds)
{
    int *fds = calloc((size_t)nports, sizeof *fds);
    size_t *counts = calloc((size_t)nports, sizeof *counts), per_server = MAX_SAMPLES / (size_t)nports;
    char *out = malloc(size), *in = malloc(size);
    double *samples = malloc(MAX_SAMPLES * sizeof *samples);
    uint64_t seq = 0;
    double start, stop, cpu0, t0, t1 = 0;
    int warm = 1; /* the first turn of every server only warms up */

    if (!fds || !counts || !out || !in || !samples)
        fail("out of memory");
    for (int i = 0; i < nports; i++)
        fds[i] = connect_to(host, atoi(ports[i]), 0);
    mark("ready");
    cpu0 = cpu_seconds();
    start = now();
    stop = start + seconds;
    do {
        for (int i = 0; i < nports; i++) {
            for (int k = 0; k < BLOCK; k++) {
                fill_random(out, size, ++seq);
                t0 = now();
                send_exact(fds[i], out, size);
                recv_exact(fds[i], in, size);
                t1 = now();
                if (memcmp(in, out, size) != 0)
                    fail("port %s, round trip %llu: echo differs from what was sent", ports[i],
                         (unsigned long long)seq);
                if (!warm && k >= BLOCK_WARM && counts[i] < per_server)
                    samples[(size_t)i * per_server + counts[i]++] = (t1 - t0) * 1e6;
            }
        }
        warm = 0;
    } while (t1 < stop);
    double cpu = cpu_seconds() - cpu0, wall = t1 - start;
    mark("done");
    printf("{\"mode\": \"rtt\", \"size\": %zu, \"seconds\": %.4f, \"cpu_pct\": %.1f, \"servers\": [", size, wall,
           100 * cpu / wall);
    for (int i = 0; i < nports; i++) {
        double *x = samples + (size_t)i * per_server, sum = 0;
        size_t n = counts[i];
        close(fds[i]);
        if (n == 0)
            fail("no round trips counted: give it more than %.2f s", seconds);
        for (size_t k = 0; k < n; k++)
            sum += x[k];
        qsort(x, n, sizeof *x, cmp_double);
        printf("%s{\"port\": %s, \"count\": %zu, \"min_us\": %.2f, \"p50_us\": %.2f, \"p90_us\": %.2f, "
               "\"p99_us\": %.2f, \"p999_us\": %.2f, \"mean_us\": %.2f}",
               i ? ", " : "", ports[i], n, x[0], percentile(x, n, 0.50), percentile(x, n, 0.90),
               percentile(x, n, 0.99), percentile(x, n, 0.999), sum / (double)n);
    }
    puts("]}");
    free(samples), free(out), free(in), free(fds), free(counts);
}

/* One connection, sending as fast as the server echoes; every byte back compared with what went. */
static void run_stream(const char *host, int port, double seconds)
{
    int fd = connect_to(host, port, 1), ep = epoll_create1(0);
    char *pattern = malloc(PATTERN_LEN + STREAM_CHUNK), *buf = malloc(STREAM_CHUNK);
    uint64_t sent = 0, got = 0, got_at_start = 0, got_at_stop = 0;
    struct epoll_event ev = {0};
    int phase = 0, eof = 0; /* phase 0 warmup, 1 measuring, 2 draining after shutdown(SHUT_WR) */
    double start = now(), t_start = 0, t_stop = 0, cpu0 = 0, cpu = 0, last_progress = 0;

    if (!pattern || !buf || ep < 0)
        fail("out of memory or epoll: %s", strerror(errno));
    /* The pattern, then its first STREAM_CHUNK bytes again: any window of the stream is contiguous. */
    fill_random(pattern, PATTERN_LEN, 42);
    for (size_t i = PATTERN_LEN; i < PATTERN_LEN + STREAM_CHUNK; i++)
        pattern[i] = pattern[i - PATTERN_LEN];
    ev.events = EPOLLIN | EPOLLOUT;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);

    while (!eof) {
        struct epoll_event events[1];
        double t = now();

        if (phase == 0 && t - start >= WARMUP) {
            mark("ready");
            phase = 1, t_start = t, got_at_start = got, cpu0 = cpu_seconds();
        } else if (phase == 1 && t - t_start >= seconds) {
            phase = 2, t_stop = last_progress = t, got_at_stop = got, cpu = cpu_seconds() - cpu0;
            mark("done");
            shutdown(fd, SHUT_WR); /* the server echoes the rest, then closes: FIN after the last byte */
            ev.events = EPOLLIN;
            epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        } else if (phase == 2 && t - last_progress > DRAIN_IDLE) {
            break; /* the server stopped echoing after our FIN: reported as lost bytes, not byte-exact */
        }
        if (epoll_wait(ep, events, 1, 100) < 0 && errno != EINTR)
            fail("epoll_wait: %s", strerror(errno));
        for (;;) { /* read all there is, checking it against the pattern */
            ssize_t r = recv(fd, buf, STREAM_CHUNK, MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            if (r < 0)
                fail("recv: %s", strerror(errno));
            if (r == 0) {
                if (phase != 2)
                    fail("the server closed the stream after %llu bytes", (unsigned long long)got);
                eof = 1; /* got < sent: the server closed before echoing everything (reported) */
                break;
            }
            if (got + (uint64_t)r > sent)
                fail("%llu bytes came back but only %llu were sent", (unsigned long long)(got + (uint64_t)r),
                     (unsigned long long)sent);
            if (memcmp(buf, pattern + got % PATTERN_LEN, (size_t)r) != 0) {
                size_t i = 0;
                while (buf[i] == pattern[(got + i) % PATTERN_LEN])
                    i++;
                fail("echo differs at byte %llu", (unsigned long long)(got + i));
            }
            got += (uint64_t)r;
            last_progress = t;
        }
        while (phase < 2) { /* write until the socket is full */
            ssize_t w = send(fd, pattern + sent % PATTERN_LEN, STREAM_CHUNK, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            if (w < 0)
                fail("send: %s", strerror(errno));
            sent += (uint64_t)w;
        }
    }
    close(fd), close(ep);
    {
        double wall = t_stop - t_start;
        uint64_t bytes = got_at_stop - got_at_start;
        /* Every byte that came back matched; "lost" counts those that never came back before FIN. */
        printf("{\"mode\": \"stream\", \"bytes\": %llu, \"sent\": %llu, \"echoed\": %llu, \"lost\": %llu, "
               "\"seconds\": %.4f, \"mb_per_s\": %.1f, \"byte_exact\": %s, \"cpu_pct\": %.1f}\n",
               (unsigned long long)bytes, (unsigned long long)sent, (unsigned long long)got,
               (unsigned long long)(sent - got), wall, (double)bytes / wall / 1e6, got == sent ? "true" : "false",
               100 * cpu / wall);
    }
    free(pattern), free(buf);
}

struct conn {
    int fd;
    size_t got;  /* bytes of the current echo received */
    size_t sent; /* bytes of the current request sent */
};

/* Send (the rest of) the current request; 0 when it is all out, 1 when the socket is full. */
static int push(int ep, struct conn *c, const char *msg, size_t size)
{
    while (c->sent < size) {
        ssize_t w = send(c->fd, msg + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) { /* rare with small requests: wait until it can go */
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            return 1;
        }
        if (w < 0)
            fail("send: %s", strerror(errno));
        c->sent += (size_t)w;
    }
    return 0;
}

/* CONNS connections, each with one SIZE-byte request out at a time (closed loop). */
static void run_rps(const char *host, int port, int nconns, size_t size, double seconds, int hold)
{
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    struct epoll_event *events = calloc((size_t)nconns, sizeof *events);
    char *msg = malloc(size), *buf = malloc(size);
    int ep = epoll_create1(0), phase = 0; /* 0 warmup, 1 measuring, 2 done */
    uint64_t done_requests = 0, at_start = 0;
    double start, t_start = 0, wall = 0, cpu0 = 0, cpu = 0;

    if (!conns || !events || !msg || !buf || ep < 0)
        fail("out of memory or epoll: %s", strerror(errno));
    fill_random(msg, size, 7);
    /* Connect one at a time, blocking: every connection is established before the load starts. */
    for (int i = 0; i < nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        int fd = connect_to(host, port, 0);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        conns[i].fd = fd;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    for (int i = 0; i < nconns; i++)
        push(ep, &conns[i], msg, size);
    start = now();
    while (phase < 2) {
        int n = epoll_wait(ep, events, nconns, 100);
        double t = now();
        if (n < 0 && errno != EINTR)
            fail("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (events[i].events & EPOLLOUT) {
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                if (push(ep, c, msg, size) == 0)
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
            if (!(events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                continue;
            ssize_t r = recv(c->fd, buf, size - c->got, 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r < 0)
                fail("recv: %s", strerror(errno));
            if (r == 0)
                fail("the server closed a connection mid-request");
            if (memcmp(buf, msg + c->got, (size_t)r) != 0)
                fail("echo differs from the request");
            c->got += (size_t)r;
            if (c->got < size)
                continue;
            done_requests++;
            c->got = c->sent = 0;
            push(ep, c, msg, size);
        }
        if (phase == 0 && t - start >= WARMUP) {
            mark("ready");
            phase = 1, t_start = t, at_start = done_requests, cpu0 = cpu_seconds();
        } else if (phase == 1 && t - t_start >= seconds) {
            phase = 2, wall = t - t_start, cpu = cpu_seconds() - cpu0;
        }
    }
    mark("done");
    if (hold) { /* the caller reads the server's memory with every connection open */
        char line[8];
        if (!fgets(line, sizeof line, stdin))
            line[0] = '\0';
    }
    for (int i = 0; i < nconns; i++)
        close(conns[i].fd);
    {
        uint64_t requests = done_requests - at_start;
        printf("{\"mode\": \"rps\", \"conns\": %d, \"size\": %zu, \"requests\": %llu, \"seconds\": %.4f, "
               "\"rps\": %.1f, \"cpu_pct\": %.1f, \"cpu_us_per_request\": %.3f}\n",
               nconns, size, (unsigned long long)requests, wall, (double)requests / wall, 100 * cpu / wall,
               requests ? cpu * 1e6 / (double)requests : 0.0);
    }
    free(conns), free(events), free(msg), free(buf);
}

static double positive(const char *text, const char *what)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || v <= 0)
        fail("%s must be a positive number, got '%s'", what, text);
    return v;
}

int main(int argc, char **argv)
{
    /* If the caller dies, so do we: a benchmark must never leave load running. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 6 && strcmp(argv[1], "rtt") == 0)
        run_rtt(argv[2], argc - 5, argv + 5, (size_t)positive(argv[3], "SIZE"), positive(argv[4], "SECONDS"));
    else if (argc >= 5 && strcmp(argv[1], "stream") == 0)
        run_stream(argv[2], (int)positive(argv[3], "PORT"), positive(argv[4], "SECONDS"));
    else if (argc >= 7 && strcmp(argv[1], "rps") == 0)
        run_rps(argv[2], (int)positive(argv[3], "PORT"), (int)positive(argv[4], "CONNS"),
                (size_t)positive(argv[5], "SIZE"), positive(argv[6], "SECONDS"),
                argc >= 8 && strcmp(argv[7], "hold") == 0);
    else
        fail("usage: loadgen rtt HOST SIZE SECONDS PORT... | stream HOST PORT SECONDS | "
             "rps HOST PORT CONNS SIZE SECONDS [hold]");
    return 0;
}
