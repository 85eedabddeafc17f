/*
 * Treats a failed fgets() as a hiccup to retry, so end of input never ends the session.
 *
 * Bug: fgets() returns NULL at EOF (Ctrl-D on a terminal); this client clears the error and reads
 * again, skipping the "empty line". On a terminal it prints the prompt again and waits for more
 * input forever (on a pipe it spins, printing prompts); the connection is never closed.
 * A correct client leaves the loop when fgets() returns NULL, closes the socket and exits 0.
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
        memset(message, 0, sizeof message);
        if (fgets(message, sizeof message, stdin) == NULL)
            clearerr(stdin); /* "read failed, try again" */
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
        reply[got] = '\0';
        puts("Server reply :");
        puts(reply);
    }
}
