/*
 * Reads the whole echo in a loop, but only treats a negative recv() as an error.
 *
 * Bug: recv() returns 0 when the server has closed the connection. This loop adds the 0 and calls
 * recv() again, which returns 0 again at once: when the server closes, the client spins at full
 * CPU forever instead of exiting. (At EOF on stdin it still closes and exits 0.)
 * A correct client treats 0 as "the server closed": it says so and exits.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char *argv[])
{
    int sock;
    struct sockaddr_in server;
    static char message[8192], reply[8192];
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
        got = 0;
        while (got < len) {
            n = recv(sock, reply + got, len - got, 0);
            if (n < 0) {
                perror("recv");
                return 1;
            }
            got += (size_t)n;
        }
        reply[got] = '\0';
        puts("Server reply :");
        puts(reply);
    }
    close(sock);
    return 0;
}
