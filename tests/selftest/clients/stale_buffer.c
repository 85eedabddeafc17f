/*
 * Reads the whole echo, but into one buffer that is never cleared nor NUL-terminated.
 *
 * Bug: recv() writes bytes, not a C string. The reply is printed with printf("%s"), which runs on
 * to the first NUL: after a long line, a shorter line's reply comes out followed by the tail of
 * the longer one ("short" after "a longer line" prints "shortger line").
 * A correct client prints exactly the bytes it received: reply[got] = '\0', or fwrite(reply, 1, got).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char reply[8192]; /* static, so zeroed at start: the first replies print fine */

int main(int argc, char *argv[])
{
    int sock;
    struct sockaddr_in server;
    char message[8192];
    size_t len, got;
    ssize_t n;

    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 2;
    }
    sock = socket(AF_INET, SOCK_STREAM, 0);
    if (sock < 0) {
        perror("socket");
        return 1;
    }
    puts("Socket created");

    memset(&server, 0, sizeof server);
    server.sin_family = AF_INET;
    server.sin_addr.s_addr = inet_addr(argv[1]);
    server.sin_port = htons(atoi(argv[2]));
    if (connect(sock, (struct sockaddr *)&server, sizeof server) < 0) {
        perror("connect");
        return 1;
    }
    puts("Connected");

    while (1) {
        printf("Enter message : ");
        fflush(stdout);
        if (fgets(message, sizeof message, stdin) == NULL)
            break;
        message[strcspn(message, "\r\n")] = '\0';
        len = strlen(message);
        if (len == 0)
            continue;
        if (send(sock, message, len, 0) < 0) {
            perror("send");
            return 1;
        }
        for (got = 0; got < len; got += (size_t)n) {
            n = recv(sock, reply + got, len - got, 0);
            if (n <= 0) {
                puts(n == 0 ? "Server closed the connection" : "recv failed");
                return 1;
            }
        }
        puts("Server reply :");
        printf("%s\n", reply);
    }
    close(sock);
    return 0;
}
