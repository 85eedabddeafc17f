/* The lab's echo server as students often first write it: correct until a client resets while
 * its echo is on the way. Nothing ignores SIGPIPE, so that write() kills the process. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8888;
    int backlog = argc > 2 ? atoi(argv[2]) : 3;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in addr;
    char buf[2000];

    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = INADDR_ANY;
    addr.sin_port = htons((unsigned short)port);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, backlog) < 0) {
        perror("bind");
        return 1;
    }
    puts("Waiting for incoming connections...");
    fflush(stdout);
    for (;;) {
        int client = accept(fd, NULL, NULL);
        ssize_t n;
        if (client < 0)
            continue;
        while ((n = recv(client, buf, sizeof buf, 0)) > 0)
            write(client, buf, (size_t)n);
        close(client);
    }
}
