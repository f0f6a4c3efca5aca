/* Paced UDP sender for bench/run.py: replays the datagrams that bench/sender.py --dump wrote, with
 * sendmmsg, so the sender is not what limits the measured rate. Prints what it sent as JSON.
 *
 *   blast FILE HOST PORT LINES_PER_SECOND SECONDS
 *
 * FILE holds records of (uint32 length, uint32 lines, bytes), little-endian.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 64

struct datagram { uint32_t length, lines; char *bytes; };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct datagram *load(const char *path, size_t *count, double *lines_per_datagram) {
    FILE *file = fopen(path, "rb");
    if (!file) { perror(path); exit(2); }
    size_t capacity = 1024, n = 0;
    uint64_t lines = 0;
    struct datagram *all = malloc(capacity * sizeof *all);
    uint32_t header[2];
    while (fread(header, sizeof header, 1, file) == 1) {
        if (n == capacity) all = realloc(all, (capacity *= 2) * sizeof *all);
        all[n].length = header[0];
        all[n].lines = header[1];
        all[n].bytes = malloc(header[0]);
        if (fread(all[n].bytes, 1, header[0], file) != header[0]) { fprintf(stderr, "short file\n"); exit(2); }
        lines += header[1];
        n++;
    }
    fclose(file);
    *count = n;
    *lines_per_datagram = n ? (double)lines / n : 1;
    return all;
}

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: blast FILE HOST PORT LINES_PER_SECOND SECONDS\n"); return 2; }
    size_t count;
    double per_datagram;
    struct datagram *all = load(argv[1], &count, &per_datagram);
    if (!count) { fprintf(stderr, "no datagrams\n"); return 2; }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
    inet_pton(AF_INET, argv[2], &to.sin_addr);
    double datagram_rate = atof(argv[4]) / per_datagram, seconds = atof(argv[5]);
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    int sndbuf = 4 << 20;
    setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (connect(sock, (struct sockaddr *)&to, sizeof to)) { perror("connect"); return 2; }

    struct mmsghdr messages[BATCH];
    struct iovec vectors[BATCH];
    uint64_t sent = 0, attempted = 0, errors = 0, lines = 0;
    double start = now(), elapsed = 0;
    while ((elapsed = now() - start) < seconds) {
        uint64_t due = (uint64_t)(elapsed * datagram_rate) + 1;
        if (attempted < due) {  /* one batch at a time, so the clock is read between batches */
            int batch = due - attempted < BATCH ? (int)(due - attempted) : BATCH;
            for (int i = 0; i < batch; i++) {
                struct datagram *d = &all[(attempted + i) % count];
                vectors[i] = (struct iovec){.iov_base = d->bytes, .iov_len = d->length};
                memset(&messages[i], 0, sizeof messages[i]);
                messages[i].msg_hdr.msg_iov = &vectors[i];
                messages[i].msg_hdr.msg_iovlen = 1;
            }
            int done = sendmmsg(sock, messages, batch, 0);
            if (done < 0) { errors++; done = 1; }  /* that datagram never left: not counted as sent */
            else for (int i = 0; i < done; i++) { sent++; lines += all[(attempted + i) % count].lines; }
            attempted += done;
        } else {
            /* nothing due: sleep until the next datagram is (at most 1 ms), so an idle sender leaves
               the core to the servers under test instead of spinning on the clock */
            double wait = (double)attempted / datagram_rate - elapsed;
            if (wait > 50e-6) {
                struct timespec pause = {0, (long)((wait < 1e-3 ? wait : 1e-3) * 1e9)};
                nanosleep(&pause, NULL);
            }
        }
    }
    elapsed = now() - start;
    printf("{\"lines\": %llu, \"datagrams\": %llu, \"send_errors\": %llu, \"seconds\": %.6f, "
           "\"achieved_rate\": %.1f}\n", (unsigned long long)lines, (unsigned long long)sent,
           (unsigned long long)errors, elapsed, lines / elapsed);
    return 0;
}
