/* udp_discard: the UDP receive ceiling. Binds HOST:PORT (port 0: the
 * kernel picks), prints "port=N" on stdout, then receives datagrams with
 * recvmmsg (64 at a time, as the collector's libuv loop asks) and discards
 * them, counting. On SIGTERM or SIGINT it prints one JSON line:
 * {"datagrams":N,"bytes":N,"first_ns":N,"last_ns":N,"per_s":X,"rcvbuf":N}
 * where per_s is the datagrams after the first batch divided by the time
 * from the first batch to the last one received. The receive queue is asked for the same
 * size as the collector's default udp_recv_buffer (16 MiB). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define DGRAM_MAX 65536

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    int port = argc > 2 ? atoi(argv[2]) : 0, want = 8 << 20, granted = 0;
    socklen_t len = sizeof granted;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    static struct mmsghdr msgs[BATCH];
    static struct iovec iov[BATCH];
    uint64_t n = 0, n_first = 0, bytes = 0, first = 0, last = 0;
    struct sigaction act = {.sa_handler = on_signal}; /* no SA_RESTART: recvmmsg returns EINTR */

    if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        printf("Usage: udp_discard [HOST (127.0.0.1)] [PORT (0: any)]\n"
               "Receives and discards datagrams with recvmmsg(64) until SIGTERM, then prints\n"
               "one JSON line with the count and the rate.\n");
        return 0;
    }
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "udp_discard: '%s' is not an IPv4 address\n", host);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "udp_discard: bind %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &len);
    len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = malloc(DGRAM_MAX);
        if (iov[i].iov_base == NULL)
            return 1;
        iov[i].iov_len = DGRAM_MAX;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    printf("port=%d\n", ntohs(sa.sin_port));
    fflush(stdout);

    while (!stop) {
        int r = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "udp_discard: recvmmsg: %s\n", strerror(errno));
            return 1;
        }
        last = now_ns();
        if (n == 0) {
            first = last;
            n_first = (uint64_t)r; /* received before the clock started */
        }
        n += (uint64_t)r;
        for (int i = 0; i < r; i++)
            bytes += msgs[i].msg_len;
    }
    double s = (double)(last - first) / 1e9;
    printf("{\"datagrams\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"first_ns\":%" PRIu64
           ",\"last_ns\":%" PRIu64 ",\"per_s\":%.0f,\"rcvbuf\":%d}\n",
           n, bytes, first, last, s > 0 ? (double)(n - n_first) / s : 0.0, granted);
    return 0;
}
