/* A tiny DNS server for the resolver's tests: a UDP socket on 127.0.0.1 in
 * the test's own loop, answering by the first label of the name asked:
 *   good.test          A 127.0.0.1, AAAA nothing (TTL 60)
 *   _x._tcp.good.test  SRV 10 0 5269 b.good.test, SRV 5 0 5270 a.good.test
 *   _x._tcp.dot.test   SRV 0 0 0 .
 *   *nosrv*            no error, no answer (NODATA)
 *   nx*, _x._tcp.nx*   NXDOMAIN
 *   sf*, _x._tcp.sf*   SERVFAIL
 *   tc*                over UDP a truncated answer (TC), over TCP as good.test
 *   black*             never answered
 * It counts the queries it receives, so tests can see what the caches
 * spared. Header-only, static, for tests only; no root needed. */
#ifndef XS_TEST_DNS_TESTUTIL_H
#define XS_TEST_DNS_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct fake_dns {
    uv_udp_t udp;
    uv_tcp_t tcp;  /* listener on the same port */
    uv_tcp_t conn; /* the one TCP client served */
    int conn_open;
    unsigned char in[600];
    size_t in_n;
    int port;
    int queries;
    int tcp_queries;
    int answered;
    char last[256];
    char servers[32]; /* "127.0.0.1:port" for xs_dns_opts.servers */
};

struct fake_msg {
    unsigned char b[512];
    size_t n;
};

static void fm_put(struct fake_msg *m, const void *p, size_t n)
{
    if (m->n + n <= sizeof m->b) {
        memcpy(m->b + m->n, p, n);
        m->n += n;
    }
}

static void fm_put16(struct fake_msg *m, unsigned v)
{
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    fm_put(m, b, 2);
}

static void fm_name(struct fake_msg *m, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        unsigned char len = (unsigned char)l;
        fm_put(m, &len, 1);
        fm_put(m, name, l);
        name += l + (dot ? 1 : 0);
    }
    fm_put(m, "", 1);
}

/* An answer whose owner is the question (pointer to offset 12). */
static void fm_rr(struct fake_msg *m, unsigned type, const void *rdata, size_t rdlen)
{
    fm_put16(m, 0xc00c);
    fm_put16(m, type);
    fm_put16(m, 1);
    fm_put16(m, 0);
    fm_put16(m, 60);
    fm_put16(m, (unsigned)rdlen);
    fm_put(m, rdata, rdlen);
}

static void fm_srv(struct fake_msg *m, unsigned prio, unsigned port, const char *target)
{
    struct fake_msg rd = {.n = 0};
    fm_put16(&rd, prio);
    fm_put16(&rd, 0);
    fm_put16(&rd, port);
    fm_name(&rd, target);
    fm_rr(m, 33, rd.b, rd.n);
}

static void fake_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char slab[2048];
    *buf = uv_buf_init(slab, sizeof slab);
}

struct fake_send {
    uv_udp_send_t req; /* first, so the request is the allocation */
    struct fake_msg msg;
};

static void fake_sent(uv_udp_send_t *s, int status)
{
    free(s);
}

/* The name the query asks, dotted, lower case, and where the question ends. */
static size_t fake_qname(const unsigned char *q, size_t len, char *out, size_t cap)
{
    size_t p = 12, o = 0;
    while (p < len && q[p] && o + q[p] + 2 < cap) {
        if (o)
            out[o++] = '.';
        for (size_t i = 0; i < q[p] && p + 1 + i < len; i++) {
            char c = (char)q[p + 1 + i];
            out[o++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        p += 1 + q[p];
    }
    out[o] = '\0';
    return p + 1 + 4;
}

/* Builds the answer to query q[0..len). Returns 0 to answer with *m, -1
 * to stay silent. Over UDP a "tc*" name gets only a truncated header, so
 * the client must come back over TCP, where it gets the full answer. */
static int fake_answer(struct fake_dns *f, const unsigned char *q, size_t len, int over_tcp,
                       struct fake_msg *m)
{
    char name[256];
    if (len < 17)
        return -1;
    size_t qend = fake_qname(q, len, name, sizeof name);
    if (qend > len)
        return -1;
    unsigned qtype = (unsigned)(q[qend - 4] << 8 | q[qend - 3]);
    f->queries++;
    f->tcp_queries += over_tcp;
    snprintf(f->last, sizeof f->last, "%s", name);
    const char *label = name;
    if (!strncmp(label, "_x._tcp.", 8))
        label += 8;
    else if (!strncmp(label, "_xmpp-server._tcp.", 18))
        label += 18;
    if (!strncmp(label, "black", 5))
        return -1;
    unsigned rcode = 0;
    if (!strncmp(label, "nx", 2))
        rcode = 3;
    else if (!strncmp(label, "sf", 2))
        rcode = 2;
    int truncated = !over_tcp && !strncmp(label, "tc", 2);
    m->n = 0;
    fm_put(m, q, 2);
    fm_put16(m, (truncated ? 0x8380 : 0x8180) | rcode);
    fm_put16(m, 1);
    size_t an_at = m->n;
    fm_put16(m, 0);
    fm_put16(m, 0);
    fm_put16(m, 0);
    fm_put(m, q + 12, qend - 12);
    unsigned an = 0;
    int srv = qtype == 33 && label != name;
    if (truncated) {
        an = 0;
    } else if (rcode == 0 && qtype == 1 && !strcmp(label, "good.test") && label == name) {
        static const unsigned char lo[4] = {127, 0, 0, 1};
        fm_rr(m, 1, lo, 4);
        an = 1;
    } else if (rcode == 0 && srv && (!strcmp(label, "good.test") || !strcmp(label, "tc.test"))) {
        fm_srv(m, 10, 5269, "b.good.test");
        fm_srv(m, 5, 5270, "a.good.test");
        an = 2;
    } else if (rcode == 0 && srv && !strcmp(label, "dot.test")) {
        fm_srv(m, 0, 0, "");
        an = 1;
    }
    m->b[an_at] = (unsigned char)(an >> 8);
    m->b[an_at + 1] = (unsigned char)an;
    f->answered++;
    return 0;
}

static void fake_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                      unsigned flags)
{
    struct fake_dns *f = h->data;
    if (nread <= 0 || !from)
        return;
    /* libuv sends later when called from a receive callback, so the bytes
     * live with the request until fake_sent frees both. */
    struct fake_send *s = malloc(sizeof *s);
    if (fake_answer(f, (const unsigned char *)buf->base, (size_t)nread, 0, &s->msg) != 0) {
        free(s);
        return;
    }
    uv_buf_t out = uv_buf_init((char *)s->msg.b, (unsigned)s->msg.n);
    if (uv_udp_send(&s->req, h, &out, 1, from, fake_sent) != 0)
        free(s);
}

/* DNS over TCP (RFC 1035 section 4.2.2): each message has a two-byte
 * length in front. One connection at a time is all the tests need. */
struct fake_write {
    uv_write_t req; /* first, so the request is the allocation */
    unsigned char b[2 + sizeof(struct fake_msg)];
};

static void fake_written(uv_write_t *w, int status)
{
    free(w);
}

static void fake_conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct fake_dns *f = h->data;
    *buf = uv_buf_init((char *)f->in + f->in_n, (unsigned)(sizeof f->in - f->in_n));
}

static void fake_conn_closed(uv_handle_t *h)
{
    struct fake_dns *f = h->data;
    f->conn_open = 0;
}

static void fake_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct fake_dns *f = s->data;
    if (nread < 0 || f->in_n + (size_t)nread > sizeof f->in) {
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, fake_conn_closed);
        return;
    }
    f->in_n += (size_t)nread;
    while (f->in_n >= 2 && f->in_n >= 2 + (size_t)(f->in[0] << 8 | f->in[1])) {
        size_t len = (size_t)(f->in[0] << 8 | f->in[1]);
        struct fake_msg m;
        if (fake_answer(f, f->in + 2, len, 1, &m) == 0) {
            struct fake_write *w = malloc(sizeof *w);
            w->b[0] = (unsigned char)(m.n >> 8);
            w->b[1] = (unsigned char)m.n;
            memcpy(w->b + 2, m.b, m.n);
            uv_buf_t out = uv_buf_init((char *)w->b, (unsigned)(2 + m.n));
            if (uv_write(&w->req, s, &out, 1, fake_written) != 0)
                free(w);
        }
        memmove(f->in, f->in + 2 + len, f->in_n - 2 - len);
        f->in_n -= 2 + len;
    }
}

static void fake_accept(uv_stream_t *srv, int status)
{
    struct fake_dns *f = srv->data;
    if (status != 0 || f->conn_open)
        return;
    uv_tcp_init(srv->loop, &f->conn);
    f->conn.data = f;
    f->conn_open = 1;
    f->in_n = 0;
    if (uv_accept(srv, (uv_stream_t *)&f->conn) != 0 ||
        uv_read_start((uv_stream_t *)&f->conn, fake_conn_alloc, fake_conn_read) != 0)
        uv_close((uv_handle_t *)&f->conn, fake_conn_closed);
}

static int fake_dns_start(uv_loop_t *loop, struct fake_dns *f)
{
    memset(f, 0, sizeof *f);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_udp_init(loop, &f->udp);
    f->udp.data = f;
    if (uv_udp_bind(&f->udp, (const struct sockaddr *)&a, 0) != 0)
        return -1;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_udp_getsockname(&f->udp, (struct sockaddr *)&ss, &len);
    f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    snprintf(f->servers, sizeof f->servers, "127.0.0.1:%d", f->port);
    /* The same port over TCP, for answers that do not fit a datagram. */
    uv_ip4_addr("127.0.0.1", f->port, &a);
    uv_tcp_init(loop, &f->tcp);
    f->tcp.data = f;
    if (uv_tcp_bind(&f->tcp, (const struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&f->tcp, 4, fake_accept) != 0)
        return -1;
    return uv_udp_recv_start(&f->udp, fake_alloc, fake_recv);
}

static void fake_dns_stop(struct fake_dns *f)
{
    uv_close((uv_handle_t *)&f->udp, NULL);
    uv_close((uv_handle_t *)&f->tcp, NULL);
    if (f->conn_open && !uv_is_closing((uv_handle_t *)&f->conn))
        uv_close((uv_handle_t *)&f->conn, fake_conn_closed);
}

/* Milliseconds since `t0` (uv_hrtime). */
static double ms_since(uint64_t t0)
{
    return (double)(uv_hrtime() - t0) / 1e6;
}

static void fake_tick(uv_timer_t *t)
{
    /* Nothing to do: the tick only wakes uv_run, so the bound is checked. */
}

/* Runs the loop until *flag reaches `want` or `max_ms` pass; a ticking
 * timer keeps the loop from sleeping past the bound. */
static void run_until_n(uv_loop_t *loop, const int *flag, int want, int max_ms)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, fake_tick, 5, 5);
    uint64_t t0 = uv_hrtime();
    while (*flag < want && ms_since(t0) < max_ms)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

#endif
