/*
 * The lab's TCP echo server (RFC 862): every byte a client sends comes back, until it leaves.
 * C twin of server.py: same options, same output, same exit codes.
 *
 *   cc -Wall -Wextra -O2 -o server server.c
 *   ./server [--host 0.0.0.0] [--port 8888] [--backlog 3] [--mode iterative|concurrent]
 *
 * "iterative" serves one client at a time, like the lab's first program, so the listen backlog
 * is observable; "concurrent" serves every client at once from one epoll event loop.
 * Exit status: 1 cannot listen, 2 bad arguments, 130 Ctrl-C.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define PROG "echo.server"
/* Bytes per recv(): large reads mean fewer syscalls per byte (the lab's 2000 capped a stream at
 * about a fifth of what loopback carries). */
#define CHUNK (256 * 1024)

static const char usage[] =
    "usage: echo.server [-h] [--host HOST] [--port PORT] [--backlog BACKLOG]\n"
    "                   [--mode {iterative,concurrent}]\n"
    "\n"
    "The lab's TCP echo server (RFC 862): every byte a client sends comes back,\n"
    "until it leaves.\n"
    "\n"
    "options:\n"
    "  -h, --help            show this help message and exit\n"
    "  --host HOST           address to bind (default 0.0.0.0)\n"
    "  --port PORT           0 picks a free port\n"
    "  --backlog BACKLOG     listen() backlog\n"
    "  --mode {iterative,concurrent}\n";

static void on_sigint(int sig)
{
    (void)sig;
    _exit(130);
}

/* One line on stderr, not a usage block: the harness and the lab read the last line. */
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see --help)\n", stderr);
    va_end(ap);
    exit(2);
}

/* Whole string must be a decimal number: "12x", "" and overflow are rejected. */
static int parse_long(const char *text, long *value)
{
    char *end;
    errno = 0;
    *value = strtol(text, &end, 10);
    return end != text && *end == '\0' && errno == 0;
}

/* "Connection accepted from IP:PORT", "Listening on IP:PORT" */
static void say_address(const char *what, const struct sockaddr *sa, socklen_t len)
{
    char host[64] = "?", port[8] = "?"; /* numeric: IPv6 is at most 45 chars + "%scope" */
    getnameinfo(sa, len, host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV);
    printf("%s %s:%s\n", what, host, port);
}

/* Returns the listening socket, or -1 with errno (or *gai_err) set. */
static int open_listener(const char *host, int port, int backlog, int *gai_err)
{
    int family = strchr(host, ':') ? AF_INET6 : AF_INET;
    struct addrinfo hints = {0}, *ai;
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    char service[8];
    int fd, one = 1;

    fd = socket(family, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    puts("Socket created");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);

    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(service, sizeof service, "%d", port);
    *gai_err = getaddrinfo(*host ? host : NULL, service, &hints, &ai);
    if (*gai_err) {
        close(fd);
        return -1;
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        int saved = errno;
        freeaddrinfo(ai);
        close(fd);
        errno = saved;
        return -1;
    }
    freeaddrinfo(ai);
    puts("bind done");
    if (listen(fd, backlog) < 0 || getsockname(fd, (struct sockaddr *)&bound, &len) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    say_address("Listening on", (struct sockaddr *)&bound, len);
    return fd;
}

/* Errors that only concern the connection being accepted: try the next one. */
static int accept_failed_harmlessly(void)
{
    return errno == ECONNABORTED || errno == EINTR || errno == EPROTO;
}

static void accept_failed(void)
{
    fprintf(stderr, PROG ": accept: %s\n", strerror(errno));
    exit(1);
}

/* send() may write less than asked: loop until all of it is written. */
static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static char buf[CHUNK]; /* every read goes here, and is written back before the next read */

/* Echo until the client closes; a client that resets or vanishes only ends its own session. */
static void serve_one(int fd)
{
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) {
            puts("Client disconnected");
            break;
        }
        /* ECONNRESET, EPIPE, ETIMEDOUT: the client is gone, not us */
        if (n < 0 || send_all(fd, buf, (size_t)n) < 0) {
            printf("Client disconnected (%s)\n", strerror(errno));
            break;
        }
    }
    close(fd);
}

static void serve_iterative(int listener)
{
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd;

        puts("Waiting for incoming connections...");
        fd = accept(listener, (struct sockaddr *)&peer, &len);
        if (fd < 0) {
            if (accept_failed_harmlessly()) /* e.g. the client reset while still queued */
                continue;
            accept_failed();
        }
        say_address("Connection accepted from", (struct sockaddr *)&peer, len);
        serve_one(fd);
    }
}

struct session {
    int fd;
    char *unsent;    /* what the client's socket could not take yet (malloc'd), or NULL */
    size_t off, len; /* unsent[off..len) is still owed to the client */
};

static void set_nonblocking(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void watch(int ep, struct session *s, uint32_t events)
{
    struct epoll_event ev = {0};
    ev.events = events;
    ev.data.ptr = s;
    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
}

static void finish(int ep, struct session *s, const char *why)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    free(s->unsent);
    free(s);
    if (why)
        printf("Client disconnected (%s)\n", why);
    else
        puts("Client disconnected");
}

static int would_block(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* Each read is written straight back; only what the client's socket cannot take yet is kept, and
 * that client is not read again until it has all been written (backpressure), so a client that
 * never reads cannot make the server hoard memory. epoll is told only when the state changes. */
static void on_client_event(int ep, struct session *s)
{
    const char *data = s->unsent ? s->unsent + s->off : buf;
    size_t len = s->unsent ? s->len - s->off : 0;
    ssize_t n;

    if (!s->unsent) { /* nothing owed: read */
        n = recv(s->fd, buf, CHUNK, 0);
        if (n == 0) { /* FIN, and all it sent was echoed: close() sends ours */
            finish(ep, s, NULL);
            return;
        }
        if (n < 0) {
            if (!would_block())
                finish(ep, s, strerror(errno));
            return;
        }
        len = (size_t)n;
    }
    n = send(s->fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && !would_block()) {
        finish(ep, s, strerror(errno));
        return;
    }
    if (n < 0)
        n = 0;
    if ((size_t)n == len) { /* all written: read again */
        if (s->unsent) {
            free(s->unsent);
            s->unsent = NULL;
            watch(ep, s, EPOLLIN);
        }
    } else if (s->unsent) { /* still owed some */
        s->off += (size_t)n;
    } else { /* keep the rest until the socket can take it */
        s->len = len - (size_t)n;
        s->off = 0;
        s->unsent = malloc(s->len);
        if (!s->unsent) {
            finish(ep, s, "out of memory");
            return;
        }
        memcpy(s->unsent, data + n, s->len);
        watch(ep, s, EPOLLOUT);
    }
}

/* Empty the accept queue at each wake-up, so a burst of clients never finds it full. */
static void accept_all(int ep, int listener)
{
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        struct epoll_event ev = {0};
        struct session *s;
        int fd = accept(listener, (struct sockaddr *)&peer, &len);

        if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* queue empty */
        if (fd < 0) {
            if (accept_failed_harmlessly())
                continue;
            accept_failed();
        }
        s = calloc(1, sizeof *s);
        if (!s) {
            close(fd);
            continue;
        }
        s->fd = fd;
        set_nonblocking(fd);
        ev.events = EPOLLIN;
        ev.data.ptr = s;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        say_address("Connection accepted from", (struct sockaddr *)&peer, len);
    }
}

static void serve_concurrent(int listener)
{
    struct epoll_event ev = {0}, events[64];
    int ep = epoll_create1(0);

    if (ep < 0) {
        fprintf(stderr, PROG ": epoll: %s\n", strerror(errno));
        exit(1);
    }
    set_nonblocking(listener);
    ev.events = EPOLLIN;
    ev.data.ptr = NULL; /* NULL marks the listener */
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
    puts("Waiting for incoming connections...");

    for (;;) {
        int n = epoll_wait(ep, events, 64, -1);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, PROG ": epoll_wait: %s\n", strerror(errno));
            exit(1);
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr)
                on_client_event(ep, events[i].data.ptr);
            else
                accept_all(ep, listener);
        }
    }
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"help", no_argument, NULL, 'h'},
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"backlog", required_argument, NULL, 'b'},
        {"mode", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    const char *host = "0.0.0.0", *mode = "iterative";
    long port = 8888, backlog = 3;
    int c, fd, gai_err = 0;

    opterr = 0; /* we print our own one-line errors */
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, stdout);
            return 0;
        case 'H':
            host = optarg;
            break;
        case 'p':
            if (!parse_long(optarg, &port))
                usage_error("argument --port: invalid port_number value: '%s'", optarg);
            if (port < 0 || port > 65535)
                usage_error("argument --port: port must be 0-65535, got %ld", port);
            break;
        case 'b':
            if (!parse_long(optarg, &backlog))
                usage_error("argument --backlog: invalid backlog_size value: '%s'", optarg);
            if (backlog < 0)
                usage_error("argument --backlog: backlog must be >= 0, got %ld", backlog);
            if (backlog > INT_MAX) /* the kernel caps it at net.core.somaxconn anyway */
                backlog = INT_MAX;
            break;
        case 'm':
            if (strcmp(optarg, "iterative") && strcmp(optarg, "concurrent"))
                usage_error("argument --mode: invalid choice: '%s' "
                            "(choose from 'iterative', 'concurrent')", optarg);
            mode = optarg;
            break;
        case ':': /* optopt is the option's val: find its long name */
            for (c = 0; options[c + 1].name && options[c].val != optopt; c++)
                ;
            usage_error("argument --%s: expected one argument", options[c].name);
            break;
        default: /* unknown "-x" (optopt = 'x'), unknown or ambiguous "--xyz" (optopt = 0) */
            if (optopt && optopt != 'h')
                usage_error("unrecognized arguments: -%c", optopt);
            usage_error("unrecognized arguments: %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        usage_error("unrecognized arguments: %s", argv[optind]);

    /* Without this, writing to a client that has reset kills the server (EPIPE comes with SIGPIPE).
     * MSG_NOSIGNAL below already covers send(); this also covers a closed stdout pipe. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_sigint);
    setvbuf(stdout, NULL, _IOLBF, 0); /* stdout may be a pipe: show each line at once */

    fd = open_listener(host, (int)port, (int)backlog, &gai_err);
    if (fd < 0) {
        fprintf(stderr, PROG ": cannot listen on %s:%ld: %s\n", host, port,
                gai_err ? gai_strerror(gai_err) : strerror(errno));
        return 1;
    }
    if (strcmp(mode, "concurrent") == 0)
        serve_concurrent(fd);
    else
        serve_iterative(fd);
    return 0;
}
