/*
 * The least an echo server can be: accept, then recv/send with a 64 KiB buffer until the client
 * leaves, one client at a time. The bench's floor for round-trip time (nothing to do but syscalls).
 *
 *   cc -O2 -Wall -Wextra -o minimal_echo minimal_echo.c && ./minimal_echo PORT
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    static char buf[65536];
    struct sockaddr_in sa = {0};
    int one = 1, listener = socket(AF_INET, SOCK_STREAM, 0);

    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the bench */
    if (argc != 2 || listener < 0)
        return 2;
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)atoi(argv[1]));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listener, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(listener, 128) < 0) {
        perror("minimal_echo");
        return 1;
    }
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        ssize_t n;
        if (fd < 0)
            continue;
        while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
            for (ssize_t off = 0, w; off < n; off += w)
                if ((w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL)) <= 0)
                    goto done;
        }
    done:
        close(fd);
    }
}
