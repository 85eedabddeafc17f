/*
 * Correct, written carefully: getline() (POSIX) reads lines of any length, send() and recv() are
 * looped until every byte is through, and every return value is checked.
 *
 * At EOF it half-closes (shutdown SHUT_WR: the server sees EOF) before close() and exits 0; it
 * exits 1 when the connection is refused and when the server closes before the echo is complete.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

static int send_all(int sock, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(sock, buf, len, MSG_NOSIGNAL); /* EPIPE, not death by SIGPIPE */
        if (n < 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Returns len, or 0 if the server closed first, or -1 on error. */
static ssize_t recv_all(int sock, char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv(sock, buf + got, len - got, 0);
        if (n <= 0)
            return n;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int main(int argc, char *argv[])
{
    struct sockaddr_in server;
    char *line = NULL, *reply = NULL;
    size_t cap = 0;
    ssize_t len, got;
    int sock;

    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 2;
    }
    memset(&server, 0, sizeof server);
    server.sin_family = AF_INET;
    server.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1) {
        fprintf(stderr, "%s: not an IPv4 address\n", argv[1]);
        return 2;
    }
    sock = socket(AF_INET, SOCK_STREAM, 0);
    if (sock < 0) {
        perror("socket");
        return 1;
    }
    puts("Socket created");
    if (connect(sock, (struct sockaddr *)&server, sizeof server) < 0) {
        perror("connect");
        return 1;
    }
    puts("Connected");

    for (;;) {
        printf("Enter message : ");
        fflush(stdout);
        len = getline(&line, &cap, stdin);
        if (len < 0)
            break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (len == 0)
            continue;
        free(reply);
        reply = malloc((size_t)len);
        if (reply == NULL) {
            perror("malloc");
            return 1;
        }
        if (send_all(sock, line, (size_t)len) < 0) {
            perror("send");
            return 1;
        }
        got = recv_all(sock, reply, (size_t)len);
        if (got < 0) {
            perror("recv");
            return 1;
        }
        if (got == 0) {
            fprintf(stderr, "server closed the connection\n");
            return 1;
        }
        puts("Server reply :");
        fwrite(reply, 1, (size_t)got, stdout);
        putchar('\n');
    }
    if (ferror(stdin)) {
        perror("stdin");
        return 1;
    }
    putchar('\n');
    if (shutdown(sock, SHUT_WR) < 0)
        perror("shutdown");
    if (close(sock) < 0) {
        perror("close");
        return 1;
    }
    free(line);
    free(reply);
    return 0;
}
