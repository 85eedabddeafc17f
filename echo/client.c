/*
 * The lab's interactive TCP echo client: send each line typed, print what the server sends back.
 * C twin of client.py: same options, same output, same exit codes.
 *
 *   cc -Wall -Wextra -O2 -o client client.c
 *   ./client [--host 127.0.0.1] [--port 8888] [--timeout 10]
 *
 * Exit status: 0 after EOF on stdin, 2 bad arguments, 3 connection refused, 4 server unreachable or
 * silent (timeout), 5 the server closed or reset the connection mid-session, 1 anything else.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define PROG "echo.client"
#define CHUNK_DRAIN 4096

enum { EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_SERVER_GONE };

static const char usage[] =
    "usage: echo.client [-h] [--host HOST] [--port PORT] [--timeout TIMEOUT]\n"
    "\n"
    "The lab's interactive TCP echo client: send each line typed, print what the\n"
    "server sends back.\n"
    "\n"
    "options:\n"
    "  -h, --help         show this help message and exit\n"
    "  --host HOST\n"
    "  --port PORT\n"
    "  --timeout TIMEOUT  seconds to connect or to wait for a reply\n";

static int timeout_ms; /* for connect() and for each wait for the server */

static void on_sigint(int sig)
{
    (void)sig;
    _exit(130);
}

/* One line on stderr, then exit with the given status. */
static void fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(status);
}

#define usage_error(fmt, arg) fail(EXIT_USAGE, "error: " fmt " (see --help)", arg)

/* Wait up to timeout_ms for fd to become ready; returns the ready events, 0 on timeout. */
static short wait_for(int fd, short events)
{
    struct pollfd p = {fd, events, 0};
    int r;

    while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
        ;
    if (r < 0)
        fail(EXIT_ERROR, "poll: %s", strerror(errno));
    return r ? p.revents : 0;
}

static int connect_to(const char *host, long port, double timeout)
{
    struct addrinfo hints = {0}, *ai;
    char service[16];
    int fd, err;
    socklen_t len = sizeof err;

    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof service, "%ld", port);
    err = getaddrinfo(host, service, &hints, &ai);
    if (err)
        fail(EXIT_UNREACHABLE, "cannot resolve %s: %s", host, gai_strerror(err));
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        fail(EXIT_ERROR, "socket: %s", strerror(errno));
    puts("Socket created");

    /* A blocking connect() to a silent host can hang for minutes: start it, then wait ourselves. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        err = 0;
    else if (errno != EINPROGRESS)
        err = errno;
    else if (wait_for(fd, POLLOUT) == 0)
        fail(EXIT_UNREACHABLE, "no answer from %s:%ld within %g s", host, port, timeout);
    else
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    freeaddrinfo(ai);

    if (err == ECONNREFUSED)
        fail(EXIT_REFUSED, "connection refused by %s:%ld (is the server running?)", host, port);
    if (err == EHOSTUNREACH || err == ENETUNREACH || err == ETIMEDOUT || err == EHOSTDOWN)
        fail(EXIT_UNREACHABLE, "cannot connect to %s:%ld: %s", host, port, strerror(err));
    if (err)
        fail(EXIT_ERROR, "cannot connect to %s:%ld: %s", host, port, strerror(err));
    puts("Connected");
    return fd;
}

static void connection_failed(int err)
{
    if (err == ECONNRESET || err == EPIPE)
        fail(EXIT_SERVER_GONE, "server reset the connection");
    fail(EXIT_ERROR, "connection lost: %s", strerror(err));
}

/*
 * Send one message and read back exactly as many bytes: TCP is a stream, replies may split.
 * Sending and reading go on together, so a line longer than the socket buffers cannot deadlock
 * (the server stops reading while we do not read its echo).
 */
static void exchange(int fd, const char *msg, char *reply, size_t len)
{
    size_t sent = 0, got = 0;

    while (got < len) {
        short ready = wait_for(fd, POLLIN | (sent < len ? POLLOUT : 0));
        ssize_t n;

        if (!ready)
            fail(EXIT_UNREACHABLE, "no reply from the server in time");
        if (sent < len && (ready & (POLLOUT | POLLERR | POLLHUP))) {
            /* MSG_NOSIGNAL: a server that has reset gives EPIPE instead of killing us (SIGPIPE) */
            n = send(fd, msg + sent, len - sent, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                connection_failed(errno);
            if (n > 0)
                sent += (size_t)n;
        }
        if (ready & (POLLIN | POLLERR | POLLHUP)) {
            n = recv(fd, reply + got, len - got, 0);
            if (n == 0)
                fail(EXIT_SERVER_GONE, "server closed the connection before replying");
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                connection_failed(errno);
            if (n > 0)
                got += (size_t)n;
        }
    }
}

/* Send our FIN, then read until the server's: closing with unread data would send a reset
 * instead of a FIN (RFC 2525 2.17). */
static void close_cleanly(int fd)
{
    char buf[CHUNK_DRAIN];

    shutdown(fd, SHUT_WR);
    while (wait_for(fd, POLLIN)) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            break;
    }
    close(fd);
}

static void parse_args(int argc, char **argv, const char **host, long *port, double *timeout)
{
    static const struct option options[] = {
        {"help", no_argument, NULL, 'h'},
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"timeout", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    char *end;
    int c;

    opterr = 0; /* we print our own one-line errors */
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, stdout);
            exit(EXIT_OK);
        case 'H':
            *host = optarg;
            break;
        case 'p':
            errno = 0;
            *port = strtol(optarg, &end, 10);
            if (end == optarg || *end || errno)
                usage_error("argument --port: invalid int value: '%s'", optarg);
            if (*port < 0 || *port > 65535)
                usage_error("argument --port: port must be 0-65535, got %ld", *port);
            break;
        case 't':
            errno = 0;
            *timeout = strtod(optarg, &end);
            if (end == optarg || *end || errno)
                usage_error("argument --timeout: invalid float value: '%s'", optarg);
            if (!(*timeout > 0) || !isfinite(*timeout))
                usage_error("argument --timeout: timeout must be > 0 seconds, got %s", optarg);
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
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 8888;
    double timeout = 10.0;
    static char *line, *reply; /* static: still reachable at exit(), so no leak reports */
    static size_t cap, reply_cap;
    ssize_t len;
    int fd;

    parse_args(argc, argv, &host, &port, &timeout);
    timeout_ms = timeout * 1000 >= INT_MAX ? INT_MAX : (int)(timeout * 1000 + 0.999);
    signal(SIGINT, on_sigint);
    setvbuf(stdout, NULL, _IOLBF, 0); /* stdout may be a pipe: show each line at once */

    fd = connect_to(host, port, timeout);
    for (;;) {
        fputs("Enter message : ", stdout);
        fflush(stdout); /* no newline: flush by hand */
        len = getline(&line, &cap, stdin); /* any length; may contain NUL bytes */
        if (len < 0) {
            putchar('\n');
            close_cleanly(fd);
            return EXIT_OK;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (len == 0)
            continue;
        if (cap > reply_cap && !(reply = realloc(reply, reply_cap = cap)))
            fail(EXIT_ERROR, "out of memory");
        exchange(fd, line, reply, (size_t)len);
        puts("Server reply :");
        fwrite(reply, 1, (size_t)len, stdout);
        putchar('\n');
    }
}
