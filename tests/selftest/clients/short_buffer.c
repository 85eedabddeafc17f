/*
 * Correct, except that its line buffer holds 255 characters.
 *
 * Bug: fgets(buf, 256, stdin) stops after 255 characters; the rest of a longer line is read by the
 * next fgets() as if it were the next line. A 600-character line goes out as three messages
 * (255, 255 and 90 characters) and comes back as three replies, each printed on its own line
 * under its own "Server reply :". (The bytes the server receives are the line's, in order.)
 * A correct client reads lines of any length (getline) or of at least the lab's 4 KiB.
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
    char buf[256], reply[256];
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
        if (fgets(buf, 256, stdin) == NULL)
            break;
        buf[strcspn(buf, "\r\n")] = '\0';
        len = strlen(buf);
        if (len == 0)
            continue;
        if (send(sock, buf, len, 0) < 0) {
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
    close(sock);
    return 0;
}
