/*
 * The client from the classic sockets tutorial, as students first type it in.
 *
 * Bugs (one mistake, two symptoms): scanf("%s") reads one word, so "hello world" goes out as two
 * messages, "hello" and "world", neither with a space nor a newline; and one recv() per word is
 * taken for the whole reply, printed with printf("%s") from a buffer that is never cleared.
 * When the echo arrives in two parts it prints the first part, and the rest turns up in front of
 * the next reply; after a longer reply, a shorter one is printed with the older one's tail.
 * A correct client reads whole lines (fgets, getline), and calls recv() until it has as many bytes
 * as it sent, printing exactly those.
 * Unlike the tutorial it stops at EOF and when the server closes, so nothing else breaks.
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
    static char message[8192], server_reply[8192];

    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 2;
    }
    sock = socket(AF_INET, SOCK_STREAM, 0);
    if (sock == -1) {
        perror("Could not create socket");
        return 1;
    }
    puts("Socket created");

    memset(&server, 0, sizeof server);
    server.sin_addr.s_addr = inet_addr(argv[1]);
    server.sin_family = AF_INET;
    server.sin_port = htons(atoi(argv[2]));
    if (connect(sock, (struct sockaddr *)&server, sizeof server) < 0) {
        perror("connect failed. Error");
        return 1;
    }
    puts("Connected");

    while (1) {
        printf("Enter message : ");
        fflush(stdout);
        if (scanf("%s", message) != 1)
            break;
        if (send(sock, message, strlen(message), 0) < 0) {
            puts("Send failed");
            return 1;
        }
        if (recv(sock, server_reply, sizeof server_reply - 1, 0) <= 0) {
            puts("recv failed");
            break;
        }
        puts("Server reply :");
        printf("%s\n", server_reply);
    }
    close(sock);
    return 0;
}
