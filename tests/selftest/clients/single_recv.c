/*
 * Reads whole lines and sends them correctly, but takes one recv() for the whole reply.
 *
 * Bug: TCP is a byte stream, not a stream of messages: when the echo arrives in two parts a few
 * hundred milliseconds apart, the one recv() returns the first part, which is printed as the
 * reply; the rest is read, and printed, in front of the next line's reply.
 * A correct client calls recv() until it has as many bytes as it sent.
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
        if (fgets(message, sizeof message, stdin) == NULL)
            break;
        message[strcspn(message, "\r\n")] = '\0';
        if (message[0] == '\0')
            continue;
        if (send(sock, message, strlen(message), 0) < 0) {
            perror("send");
            return 1;
        }
        n = recv(sock, reply, sizeof reply - 1, 0);
        if (n < 0) {
            perror("recv");
            return 1;
        }
        if (n == 0) {
            puts("Server closed the connection");
            return 1;
        }
        reply[n] = '\0';
        puts("Server reply :");
        puts(reply);
    }
    close(sock);
    return 0;
}
