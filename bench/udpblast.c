/*
 * udpblast: fast UDP sender/receiver for bench/bridge.py, so the benchmark measures the bridge and not Python.
 *
 *   udpblast send HOST PORT SIZE PPS SECONDS [SRCPORT]  -> paced sendmmsg bursts (PPS 0 = as fast as possible)
 *   udpblast recv PORT IDLE_SECONDS MAX_SECONDS         -> recvmmsg until idle after the first frame
 *
 * Both print one JSON line on stdout. The receiver prints "ready" on stderr once bound.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32
#define RBATCH 64
#define MAXFRAME 2048

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_until(double when)
{
    struct timespec ts;
    ts.tv_sec = (time_t)when;
    ts.tv_nsec = (long)((when - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static int do_send(const char *host, int port, int size, double pps, double seconds, int srcport)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in dst = {0}, src = {0};
    static char frames[BATCH][MAXFRAME];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    long long sent = 0, failed = 0;
    int buf = 4 << 20;

    if (fd < 0 || size < 1 || size > MAXFRAME) {
        perror("socket/size");
        return 1;
    }
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    src.sin_family = AF_INET;
    src.sin_port = htons(srcport);
    src.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (srcport && bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
        perror("bind");
        return 1;
    }
    dst.sin_family = AF_INET;
    dst.sin_port = htons(port);
    inet_pton(AF_INET, host, &dst.sin_addr);
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < BATCH; i++) {
        memset(frames[i], 0x5a, size);
        iov[i].iov_base = frames[i];
        iov[i].iov_len = size;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &dst;
        msgs[i].msg_hdr.msg_namelen = sizeof(dst);
    }
    double start = now(), end = start + seconds;
    long long batches = 0;
    while (1) {
        double t = now();
        if (t >= end)
            break;
        if (pps > 0) {
            double due = start + (double)(batches * BATCH) / pps;
            if (due > end)
                break;
            if (due > t)
                sleep_until(due);
        }
        if (size >= 22) { /* a sequence number after the would-be Ethernet header, for reading captures */
            for (int i = 0; i < BATCH; i++) {
                long long seq = sent + i;
                memcpy(frames[i] + 14, &seq, sizeof(seq));
            }
        }
        int n = sendmmsg(fd, msgs, BATCH, 0);
        if (n < 0) {
            failed += BATCH;
        } else {
            sent += n;
            failed += BATCH - n;
        }
        batches++;
    }
    double elapsed = now() - start;
    printf("{\"sent\": %lld, \"failed\": %lld, \"elapsed\": %.6f}\n", sent, failed, elapsed);
    close(fd);
    return 0;
}

static int do_recv(int port, double idle, double maxsec)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {0};
    static char frames[RBATCH][MAXFRAME];
    struct mmsghdr msgs[RBATCH];
    struct iovec iov[RBATCH];
    struct timeval tv = {0, 50000};
    long long received = 0, bytes = 0;
    double first = 0, last = 0;
    int buf = 4 << 20;

    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        perror("bind");
        return 1;
    }
    fprintf(stderr, "ready\n");
    fflush(stderr);
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < RBATCH; i++) {
        iov[i].iov_base = frames[i];
        iov[i].iov_len = MAXFRAME;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    double start = now();
    while (1) {
        int n = recvmmsg(fd, msgs, RBATCH, 0, NULL);
        double t = now();
        if (n > 0) {
            if (!received)
                first = t;
            last = t;
            received += n;
            for (int i = 0; i < n; i++)
                bytes += msgs[i].msg_len;
        }
        if (t - start > maxsec || (received && t - last > idle))
            break;
    }
    printf("{\"received\": %lld, \"bytes\": %lld, \"first\": %.6f, \"last\": %.6f}\n", received, bytes, first, last);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 7 && strcmp(argv[1], "send") == 0)
        return do_send(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]), atof(argv[6]),
                       argc > 7 ? atoi(argv[7]) : 0);
    if (argc >= 5 && strcmp(argv[1], "recv") == 0)
        return do_recv(atoi(argv[2]), atof(argv[3]), atof(argv[4]));
    fprintf(stderr, "usage: udpblast send HOST PORT SIZE PPS SECONDS [SRCPORT] | recv PORT IDLE MAXSECONDS\n");
    return 2;
}
