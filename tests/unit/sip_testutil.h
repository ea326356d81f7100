/* Helpers shared by the SIP side's tests: a loop pumped in small steps,
 * plain loopback sockets playing the peer, and a config with port-0
 * listeners. Header-only, static, for tests only. */
#ifndef XS_TEST_SIP_TESTUTIL_H
#define XS_TEST_SIP_TESTUTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "check.h"
#include "policy/policy.h"

static inline void pump(uv_loop_t *loop, int ms)
{
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    do {
        uv_run(loop, UV_RUN_NOWAIT);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    } while (uv_hrtime() < end);
}

/* Pumps the loop until COND holds, for at most LIMIT_MS. A test that pumps a
 * fixed 20 ms and then checks can fail on a loaded runner (ASan, ctest -j);
 * waiting for the condition costs nothing when it is quick. */
#define PUMP_UNTIL(loop, cond, limit_ms)                                                           \
    do {                                                                                           \
        uint64_t end_ = uv_hrtime() + (uint64_t)(limit_ms)*1000000u;                               \
        while (!(cond) && uv_hrtime() < end_)                                                      \
            pump((loop), 1);                                                                       \
    } while (0)

/* A UDP socket bound to ip (a loopback address: all of 127/8 is local). */
static inline int udp_peer_at(const char *ip, int *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    if (port)
        *port = ntohs(a.sin_port);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static inline int udp_peer(int *port)
{
    return udp_peer_at("127.0.0.1", port);
}

static inline void udp_send_to(int fd, int port, const char *data, size_t len)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    sendto(fd, data, len, 0, (struct sockaddr *)&a, sizeof a);
}

/* Pumps the loop until a datagram arrives (returns its length, NUL-ended in
 * buf) or ms pass (returns 0). *from_port gets the sender's port. */
static inline size_t udp_wait(uv_loop_t *loop, int fd, char *buf, size_t n, int ms, int *from_port)
{
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    do {
        struct sockaddr_in a;
        socklen_t len = sizeof a;
        ssize_t r = recvfrom(fd, buf, n - 1, 0, (struct sockaddr *)&a, &len);
        if (r > 0) {
            buf[r] = '\0';
            if (from_port)
                *from_port = ntohs(a.sin_port);
            return (size_t)r;
        }
        pump(loop, 1);
    } while (uv_hrtime() < end);
    buf[0] = '\0';
    return 0;
}

/* A TCP peer whose source address is `src` (any 127/8 address works on
 * loopback), so one test can play several sources. */
static inline int tcp_peer_at(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &a.sin_addr);
    struct sockaddr_in d = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        connect(fd, (struct sockaddr *)&d, sizeof d) != 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

/* 1 when the gateway closed the connection (EOF or reset) by now. */
static inline int hung_up(int fd)
{
    char b[256];
    ssize_t r = recv(fd, b, sizeof b, 0);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static inline int tcp_peer(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

/* Reads what arrives on a TCP socket for ms into buf (NUL-ended). Returns
 * bytes read; *eof is set when the peer closed. */
static inline size_t tcp_read(uv_loop_t *loop, int fd, char *buf, size_t n, int ms, int *eof)
{
    size_t got = 0;
    *eof = 0;
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    do {
        ssize_t r = recv(fd, buf + got, n - 1 - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            *eof = 1;
            break;
        }
        pump(loop, 1);
    } while (uv_hrtime() < end && got < n - 1);
    buf[got] = '\0';
    return got;
}

static inline size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* A request as a SIP peer would send it; `extra` is extra header lines. */
static inline size_t make_request(char *out, size_t n, const char *method, const char *branch,
                                  int via_port, const char *extra, const char *body)
{
    size_t blen = body ? strlen(body) : 0;
    int len =
        snprintf(out, n,
                 "%s sip:bob@sip.test SIP/2.0\r\n"
                 "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\n"
                 "Max-Forwards: 70\r\n"
                 "From: \"Bob\" <sip:Bob@SIP.test>;tag=abc\r\n"
                 "To: <sip:alice@xmpp.test;transport=udp>\r\n"
                 "CSeq: 7 %s\r\n"
                 "%s"
                 "Content-Length: %zu\r\n\r\n%s",
                 method, via_port, branch, method, extra ? extra : "", blen, body ? body : "");
    return len > 0 ? (size_t)len : 0;
}

struct test_cfg {
    struct xs_config cfg;
    struct xs_sip_endpoint listen[2];
    char *domains[1];
    char *trusted[1];
};

static inline void test_cfg_init(struct test_cfg *t, const char *hop_host, int hop_port,
                                 enum xs_sip_transport hop_transport)
{
    memset(t, 0, sizeof *t);
    t->listen[0] = (struct xs_sip_endpoint){XS_SIP_UDP, "127.0.0.1", 0};
    t->listen[1] = (struct xs_sip_endpoint){XS_SIP_TCP, "127.0.0.1", 0};
    t->domains[0] = "sip.test";
    t->cfg.domains = t->domains;
    t->cfg.n_domains = 1;
    t->cfg.sip_listen = t->listen;
    t->cfg.n_sip_listen = 2;
    t->cfg.sip_next_hop = (struct xs_sip_endpoint){hop_transport, (char *)hop_host, hop_port};
    t->cfg.sip_max_message = 4096;
    /* The test peers all send from 127.0.0.1. */
    t->trusted[0] = "127.0.0.1";
    t->cfg.sip_trusted = t->trusted;
    t->cfg.n_sip_trusted = 1;
}

/* A response to req built the way a UAS would: the request's Via, From, To,
 * Call-ID and CSeq lines copied. */
static inline size_t sip_test_respond(const char *req, int code, const char *reason, char *out,
                                      size_t n)
{
    size_t o = (size_t)snprintf(out, n, "SIP/2.0 %d %s\r\n", code, reason);
    const char *names[] = {"Via:", "From:", "To:", "Call-ID:", "CSeq:"};
    for (const char *line = req; line && *line && strncmp(line, "\r\n", 2) != 0;) {
        const char *eol = strstr(line, "\r\n");
        if (!eol)
            break;
        for (size_t i = 0; i < 5; i++)
            if (strncmp(line, names[i], strlen(names[i])) == 0)
                o += (size_t)snprintf(out + o, n - o, "%.*s", (int)(eol - line + 2), line);
        line = eol + 2;
    }
    o += (size_t)snprintf(out + o, n - o, "Content-Length: 0\r\n\r\n");
    return o;
}

#endif
