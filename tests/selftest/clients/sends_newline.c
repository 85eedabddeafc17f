/*
 * Correct, written differently: it sends each line with its newline, as fgets() read it.
 *
 * The server echoes the newline too, so the client reads back strlen(line) bytes, newline
 * included, and prints them as they are, without adding one of its own. (The reference client
 * strips the newline and adds it when printing; both are fine.)
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
    static char line[8192], reply[8192];
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
    server.sin_port = htons(atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1) {
        fprintf(stderr, "%s: not an IPv4 address\n", argv[1]);
        return 2;
    }
    if (connect(sock, (struct sockaddr *)&server, sizeof server) < 0) {
        perror("connect");
        return 1;
    }
    puts("Connected");

    while (1) {
        printf("Enter message : ");
        fflush(stdout);
        if (fgets(line, sizeof line, stdin) == NULL)
            break;
        len = strlen(line);
        if (line[0] == '\n')
            continue;
        if (send(sock, line, len, 0) < 0) {
            perror("send");
            return 1;
        }
        for (got = 0; got < len; got += (size_t)n) {
            n = recv(sock, reply + got, len - got, 0);
            if (n < 0) {
                perror("recv");
                return 1;
            }
            if (n == 0) {
                puts("\nServer closed the connection");
                return 1;
            }
        }
        reply[got] = '\0';
        puts("Server reply :");
        fputs(reply, stdout);
        if (reply[got - 1] != '\n') /* a last line typed without Enter, ended by Ctrl-D */
            putchar('\n');
    }
    putchar('\n');
    close(sock);
    return 0;
}
