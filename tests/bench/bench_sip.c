/* The SIP half of the bench: the gateway's next hop (TCP and UDP listeners
 * that answer every MESSAGE with 200 OK) and a sender of MESSAGEs to the
 * gateway (TCP by default, UDP with --sip-udp).
 *
 * It is a deliberately small SIP: it frames by Content-Length, reads only
 * the headers a response must echo, and writes from one reusable buffer. The
 * sequence number travels as the first word of the body (requests we answer)
 * and as CSeq - 1 (responses we get). */
/* memmem() is a GNU extension. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>

#include "bench.h"
#include "core/buf.h"
#include "core/err.h"
#include "net/link.h"

#define BS_HEAD_MAX (16 * 1024)
#define BS_BODY_MAX (64 * 1024)
#define BS_IN_MAX (256 * 1024)
#define BS_OUT_MAX (8u << 20)
#define BS_CONNS_MAX 64
#define BS_VIA_MAX 8
/* Bytes written and not yet taken by the kernel before a send waits. */
#define BS_BACKLOG_MAX (1u << 20)
/* --sip-delay: answers held back at most; more are sent at once and counted. */
#define BS_DELAYED_MAX 1000000

struct bs_conn {
    struct bench_sip *sip;
    struct xs_link *link;
    struct xs_buf in;
    int client;
    struct bs_conn *next;
};

/* An answer held back by --sip-delay. One delay for all, so answers fall
 * due in the order they were queued and a FIFO is their timeline. */
struct bs_delayed {
    struct bs_delayed *next;
    uint64_t due;
    struct bs_conn *c; /* TCP; NULL with tcp set: its connection closed */
    int tcp;
    struct sockaddr_storage to; /* UDP */
    size_t len;
    char data[];
};

struct bench_sip {
    struct bench *b;
    uv_tcp_t listener;
    uv_udp_t udp;
    struct bs_conn *conns;
    size_t n_conns;
    struct bs_conn *client;
    uv_connect_t creq;
    int udp_ready;
    unsigned long udp_drops;              /* responses the UDP socket would not take */
    struct bs_delayed *dq_head, *dq_tail; /* --sip-delay: answers not yet due */
    size_t dq_n;
    unsigned long dq_full; /* answered at once: the queue was full */
    uv_timer_t dq_timer;
    char out[8192];                            /* every message we write is formatted here */
    char dgram[BS_HEAD_MAX + BS_BODY_MAX + 1]; /* one UDP datagram, NUL-terminated */
};

/* What one SIP message says, as spans into its bytes. */
struct bs_span {
    const char *p;
    size_t n;
};

struct bs_msg {
    struct bs_span first;
    struct bs_span via[BS_VIA_MAX];
    size_t n_via;
    struct bs_span from, to, call_id, cseq;
    long content_length; /* -1 when absent */
};

static int name_is(struct bs_span name, const char *full, const char *compact)
{
    if (name.n == strlen(full) && !strncasecmp(name.p, full, name.n))
        return 1;
    return compact && name.n == 1 && (name.p[0] | 0x20) == compact[0];
}

static struct bs_span trim(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return (struct bs_span){p, (size_t)(end - p)};
}

/* Splits the header block [p, p+n) (without the blank line) into m. */
static int parse_head(const char *p, size_t n, struct bs_msg *m)
{
    memset(m, 0, sizeof *m);
    m->content_length = -1;
    const char *end = p + n;
    const char *eol = memchr(p, '\r', n);
    if (!eol)
        eol = end;
    m->first = (struct bs_span){p, (size_t)(eol - p)};
    p = eol;
    while (p < end) {
        while (p < end && (*p == '\r' || *p == '\n'))
            p++;
        if (p >= end)
            break;
        const char *line_end = memchr(p, '\r', (size_t)(end - p));
        if (!line_end)
            line_end = end;
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (!colon)
            return XS_EPROTO;
        struct bs_span name = trim(p, colon);
        struct bs_span value = trim(colon + 1, line_end);
        if (name_is(name, "via", "v")) {
            if (m->n_via == BS_VIA_MAX)
                return XS_ELIMIT;
            m->via[m->n_via++] = value;
        } else if (name_is(name, "from", "f")) {
            m->from = value;
        } else if (name_is(name, "to", "t")) {
            m->to = value;
        } else if (name_is(name, "call-id", "i")) {
            m->call_id = value;
        } else if (name_is(name, "cseq", NULL)) {
            m->cseq = value;
        } else if (name_is(name, "content-length", "l")) {
            char num[24];
            size_t k = value.n < sizeof num - 1 ? value.n : sizeof num - 1;
            memcpy(num, value.p, k);
            num[k] = '\0';
            char *e;
            long v = strtol(num, &e, 10);
            if (e == num || v < 0 || v > BS_BODY_MAX)
                return XS_EPROTO;
            m->content_length = v;
        }
        p = line_end;
    }
    return 0;
}

static long span_long(struct bs_span s)
{
    char num[24];
    size_t k = s.n < sizeof num - 1 ? s.n : sizeof num - 1;
    memcpy(num, s.p, k);
    num[k] = '\0';
    char *e;
    long v = strtol(num, &e, 10);
    return e == num ? -1 : v;
}

static int has_tag(struct bs_span to)
{
    for (size_t i = 0; i + 5 <= to.n; i++)
        if (!strncasecmp(to.p + i, ";tag=", 5))
            return 1;
    return 0;
}

static int send_bytes(struct bench_sip *s, struct bs_conn *c, const struct sockaddr *to,
                      const char *data, size_t len)
{
    if (c)
        return c->link ? xs_link_write(c->link, data, len) : XS_ECLOSED;
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned int)len);
    int rc = uv_udp_try_send(&s->udp, &buf, 1, to);
    if (rc == UV_EAGAIN)
        return XS_EAGAIN;
    return rc < 0 ? XS_EIO : 0;
}

static void send_answer(struct bench_sip *s, struct bs_conn *c, const struct sockaddr *to,
                        const char *data, size_t n)
{
    int rc = send_bytes(s, c, to, data, n);
    if (rc == XS_EAGAIN)
        s->udp_drops++; /* the gateway retransmits; reported at the end */
    else if (rc != 0)
        bench_fatal(s->b, "sip: cannot send a response: %s", xs_strerror(rc));
}

static void answer(struct bench_sip *s, struct bs_conn *c, const struct sockaddr *to,
                   const struct bs_msg *m, int code, const char *reason)
{
    size_t cap = sizeof s->out, n = 0;
    int k = snprintf(s->out, cap, "SIP/2.0 %d %s\r\n", code, reason);
    n += (size_t)k;
    for (size_t i = 0; i < m->n_via && n < cap; i++)
        n += (size_t)snprintf(s->out + n, cap - n, "Via: %.*s\r\n", (int)m->via[i].n, m->via[i].p);
    if (n < cap)
        n += (size_t)snprintf(s->out + n, cap - n,
                              "From: %.*s\r\nTo: %.*s%s\r\nCall-ID: %.*s\r\nCSeq: %.*s\r\n"
                              "Content-Length: 0\r\n\r\n",
                              (int)m->from.n, m->from.p, (int)m->to.n, m->to.p,
                              has_tag(m->to) ? "" : ";tag=xsb", (int)m->call_id.n, m->call_id.p,
                              (int)m->cseq.n, m->cseq.p);
    if (n >= cap) {
        bench_msg_error(s->b, BENCH_X2S, -1, "sip: request too large to answer");
        return;
    }
    if (s->b->o.sip_delay_ms > 0 && s->dq_n < BS_DELAYED_MAX) {
        struct bs_delayed *d = malloc(sizeof *d + n);
        if (d) {
            d->next = NULL;
            d->due = uv_hrtime() + (uint64_t)(s->b->o.sip_delay_ms * 1e6);
            d->c = c;
            d->tcp = c != NULL;
            if (to)
                memcpy(&d->to, to,
                       to->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                 : sizeof(struct sockaddr_in));
            d->len = n;
            memcpy(d->data, s->out, n);
            if (s->dq_tail)
                s->dq_tail->next = d;
            else
                s->dq_head = d;
            s->dq_tail = d;
            s->dq_n++;
            return;
        }
    }
    if (s->b->o.sip_delay_ms > 0)
        s->dq_full++;
    send_answer(s, c, to, s->out, n);
}

/* --sip-delay: sends the answers that are due. */
static void on_dq_timer(uv_timer_t *t)
{
    struct bench_sip *s = t->data;
    uint64_t now = uv_hrtime();
    while (s->dq_head && s->dq_head->due <= now && !s->b->stopping) {
        struct bs_delayed *d = s->dq_head;
        s->dq_head = d->next;
        if (!s->dq_head)
            s->dq_tail = NULL;
        s->dq_n--;
        if (!d->tcp || d->c)
            send_answer(s, d->c, d->tcp ? NULL : (const struct sockaddr *)&d->to, d->data, d->len);
        free(d);
    }
}

/* Names the transaction a request belongs to: a retransmission repeats its
 * top Via byte for byte (branch included); a second delivery of the same
 * message in a new transaction does not. Never 0, which means "none". */
static uint32_t via_key(struct bs_span via)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < via.n; i++)
        h = (h ^ (uint8_t)via.p[i]) * 16777619u;
    return h | 1;
}

/* One whole message: head (without the blank line) and body. */
static void handle(struct bench_sip *s, struct bs_conn *c, const struct sockaddr *from,
                   const char *head, size_t hlen, const char *body, size_t blen)
{
    struct bench *b = s->b;
    struct bs_msg m;
    if (parse_head(head, hlen, &m) != 0) {
        bench_msg_error(b, BENCH_X2S, -1, "sip: unparsable message from the gateway");
        return;
    }
    if (m.first.n > 8 && !strncmp(m.first.p, "SIP/2.0 ", 8)) {
        int status = (int)span_long((struct bs_span){m.first.p + 8, m.first.n - 8});
        if (status >= 200)
            bench_answered(b, BENCH_S2X, span_long(m.cseq) - 1, status);
        return;
    }
    if (m.first.n >= 4 && !strncmp(m.first.p, "ACK ", 4))
        return;
    if (!m.via[0].n || !m.from.n || !m.to.n || !m.call_id.n || !m.cseq.n) {
        bench_msg_error(b, BENCH_X2S, -1, "sip: request without Via/From/To/Call-ID/CSeq");
        return;
    }
    if (m.first.n >= 8 && !strncmp(m.first.p, "MESSAGE ", 8)) {
        answer(s, c, from, &m, 200, "OK");
        char num[24];
        size_t k = blen < sizeof num - 1 ? blen : sizeof num - 1;
        memcpy(num, body, k);
        num[k] = '\0';
        char *e;
        long seq = strtol(num, &e, 10);
        bench_arrived(b, BENCH_X2S, e == num ? -1 : seq, via_key(m.via[0]));
        return;
    }
    if (m.first.n >= 8 && !strncmp(m.first.p, "OPTIONS ", 8))
        answer(s, c, from, &m, 200, "OK");
    else
        answer(s, c, from, &m, 501, "Not Implemented");
}

static void conn_on_data(void *ud, const char *data, size_t len)
{
    struct bs_conn *c = ud;
    struct bench_sip *s = c->sip;
    if (xs_buf_append(&c->in, data, len) != 0) {
        bench_fatal(s->b, "sip: more than %d bytes unframed on a TCP connection", BS_IN_MAX);
        xs_link_close(c->link, XS_ELIMIT);
        return;
    }
    size_t off = 0;
    while (off < c->in.len) {
        const char *p = c->in.data + off;
        size_t left = c->in.len - off;
        if (*p == '\r' || *p == '\n') { /* keep-alive CRLFs between messages */
            off++;
            continue;
        }
        const char *eoh = memmem(p, left, "\r\n\r\n", 4);
        if (!eoh) {
            if (left > BS_HEAD_MAX) {
                bench_fatal(s->b, "sip: header block over %d bytes", BS_HEAD_MAX);
                xs_link_close(c->link, XS_EPROTO);
                return;
            }
            break;
        }
        size_t hlen = (size_t)(eoh - p);
        struct bs_msg m;
        if (parse_head(p, hlen, &m) != 0 || m.content_length < 0) {
            bench_fatal(s->b, "sip: bad framing on TCP (no or bad Content-Length)");
            xs_link_close(c->link, XS_EPROTO);
            return;
        }
        size_t total = hlen + 4 + (size_t)m.content_length;
        if (left < total)
            break;
        handle(s, c, NULL, p, hlen, p + hlen + 4, (size_t)m.content_length);
        if (!c->link)
            return;
        off += total;
    }
    xs_buf_consume(&c->in, off);
}

static void conn_unlink(struct bs_conn *c)
{
    struct bench_sip *s = c->sip;
    for (struct bs_conn **pp = &s->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            s->n_conns--;
            break;
        }
    }
    if (s->client == c)
        s->client = NULL;
}

static void conn_on_closed(void *ud, int reason)
{
    struct bs_conn *c = ud;
    struct bench *b = c->sip->b;
    int client = c->client;
    c->link = NULL;
    conn_unlink(c);
    for (struct bs_delayed *d = c->sip->dq_head; d; d = d->next)
        if (d->c == c)
            d->c = NULL;
    xs_buf_free(&c->in);
    free(c);
    if (!b->stopping && (client || reason != XS_ECLOSED))
        bench_fatal(b, "sip: %s TCP connection closed: %s", client ? "our" : "a gateway",
                    xs_strerror(reason));
}

static const struct xs_link_cbs conn_cbs = {
    .data = conn_on_data,
    .closed = conn_on_closed,
};

static struct bs_conn *conn_new(struct bench_sip *s, uv_tcp_t *tcp, int client)
{
    struct bs_conn *c = calloc(1, sizeof *c);
    if (!c) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return NULL;
    }
    c->sip = s;
    c->client = client;
    xs_buf_init(&c->in, BS_IN_MAX);
    c->link = xs_link_new(tcp, &conn_cbs, c, BS_OUT_MAX);
    if (!c->link) {
        free(c);
        return NULL;
    }
    c->next = s->conns;
    s->conns = c;
    s->n_conns++;
    return c;
}

static void on_accept(uv_stream_t *server, int status)
{
    struct bench_sip *s = server->data;
    if (status < 0)
        return;
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (!tcp)
        return;
    uv_tcp_init(s->b->loop, tcp);
    if (uv_accept(server, (uv_stream_t *)tcp) != 0 || s->n_conns >= BS_CONNS_MAX ||
        s->b->stopping) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return;
    }
    conn_new(s, tcp, 0);
}

static void udp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct bench_sip *s = h->data;
    *buf = uv_buf_init(s->dgram, sizeof s->dgram - 1);
}

static void udp_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
                     unsigned flags)
{
    struct bench_sip *s = h->data;
    if (n <= 0 || !from || (flags & UV_UDP_PARTIAL))
        return;
    s->dgram[n] = '\0';
    const char *eoh = memmem(s->dgram, (size_t)n, "\r\n\r\n", 4);
    if (!eoh) {
        bench_msg_error(s->b, BENCH_X2S, -1, "sip: datagram without a header end");
        return;
    }
    size_t hlen = (size_t)(eoh - s->dgram);
    handle(s, NULL, from, s->dgram, hlen, eoh + 4, (size_t)n - hlen - 4);
}

static int bound_port(const struct sockaddr_storage *ss)
{
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

int bench_sip_listen(struct bench *b)
{
    struct bench_sip *s = calloc(1, sizeof *s);
    if (!s)
        return XS_ENOMEM;
    s->b = b;
    b->sip = s;
    struct sockaddr_in tcp_sa, udp_sa;
    uv_ip4_addr("127.0.0.1", b->hop_tcp_port, &tcp_sa);
    uv_ip4_addr("127.0.0.1", b->hop_udp_port, &udp_sa);
    uv_tcp_init(b->loop, &s->listener);
    uv_udp_init(b->loop, &s->udp);
    uv_timer_init(b->loop, &s->dq_timer);
    s->dq_timer.data = s;
    if (b->o.sip_delay_ms > 0)
        uv_timer_start(&s->dq_timer, on_dq_timer, 1, 1);
    s->listener.data = s;
    s->udp.data = s;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    int rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&tcp_sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 64, on_accept);
    if (rc == 0)
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    if (rc == 0) {
        b->hop_tcp_port = bound_port(&ss);
        len = sizeof ss;
        rc = uv_udp_bind(&s->udp, (const struct sockaddr *)&udp_sa, 0);
    }
    if (rc == 0)
        rc = uv_udp_getsockname(&s->udp, (struct sockaddr *)&ss, &len);
    if (rc == 0) {
        b->hop_udp_port = bound_port(&ss);
        /* A burst of MESSAGEs must not overflow the kernel's queue on our
         * side and be blamed on the gateway; the kernel caps the value. */
        int size = 8 << 20;
        uv_recv_buffer_size((uv_handle_t *)&s->udp, &size);
        size = 8 << 20;
        uv_send_buffer_size((uv_handle_t *)&s->udp, &size);
        rc = uv_udp_recv_start(&s->udp, udp_alloc, udp_recv);
    }
    if (rc != 0) {
        fprintf(stderr, "xsbench: cannot listen on 127.0.0.1:%d/tcp, %d/udp: %s\n", b->hop_tcp_port,
                b->hop_udp_port, uv_strerror(rc));
        return XS_EIO;
    }
    return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct bench_sip *s = req->data;
    uv_tcp_t *tcp = (uv_tcp_t *)req->handle;
    if (status < 0 || s->b->stopping) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        if (!s->b->stopping)
            bench_fatal(s->b, "sip: cannot connect to 127.0.0.1:%d: %s", s->b->gw_sip_port,
                        uv_strerror(status));
        return;
    }
    s->client = conn_new(s, tcp, 1);
    if (!s->client) {
        bench_fatal(s->b, "sip: out of memory");
        return;
    }
    bench_sip_ready(s->b);
}

void bench_sip_connect(struct bench *b)
{
    struct bench_sip *s = b->sip;
    if (b->o.sip_udp) {
        s->udp_ready = 1;
        bench_sip_ready(b);
        return;
    }
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (!tcp) {
        bench_fatal(b, "sip: out of memory");
        return;
    }
    uv_tcp_init(b->loop, tcp);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", b->gw_sip_port, &sa);
    s->creq.data = s;
    int rc = uv_tcp_connect(&s->creq, tcp, (const struct sockaddr *)&sa, on_connect);
    if (rc != 0) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        bench_fatal(b, "sip: connect: %s", uv_strerror(rc));
    }
}

int bench_sip_send(struct bench *b, long seq, uint64_t now)
{
    struct bench_sip *s = b->sip;
    if (!b->o.sip_udp && !s->client)
        return XS_ESTATE;
    char body[48];
    int blen = snprintf(body, sizeof body, "%ld %llu", seq, (unsigned long long)now);
    int n = snprintf(s->out, sizeof s->out,
                     "MESSAGE sip:u@" BENCH_DOMAIN " SIP/2.0\r\n"
                     "Via: SIP/2.0/%s 127.0.0.1:%d;branch=z9hG4bK-xsb%llx-%ld;rport\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <sip:bob@" BENCH_GW_DOMAIN ">;tag=xsb%llx\r\n"
                     "To: <sip:u@" BENCH_DOMAIN ">\r\n"
                     "Call-ID: xsb%llx-%ld@127.0.0.1\r\n"
                     "CSeq: %ld MESSAGE\r\n"
                     "Content-Type: text/plain;charset=UTF-8\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     b->o.sip_udp ? "UDP" : "TCP", b->o.sip_udp ? b->hop_udp_port : b->hop_tcp_port,
                     (unsigned long long)b->run_id, seq, (unsigned long long)b->run_id,
                     (unsigned long long)b->run_id, seq, seq + 1, blen, body);
    if (n < 0 || (size_t)n >= sizeof s->out)
        return XS_ELIMIT;
    if (b->o.sip_udp) {
        struct sockaddr_in sa;
        uv_ip4_addr("127.0.0.1", b->gw_sip_port, &sa);
        return send_bytes(s, NULL, (const struct sockaddr *)&sa, s->out, (size_t)n);
    }
    /* The gateway not reading is backpressure, not a failure: the message
     * waits (closed loop) or goes out late (open loop). */
    struct xs_link *l = s->client->link;
    if (l && xs_link_accepted(l) - xs_link_flushed(l) > BS_BACKLOG_MAX)
        return XS_EAGAIN;
    return send_bytes(s, s->client, NULL, s->out, (size_t)n);
}

void bench_sip_close(struct bench *b)
{
    struct bench_sip *s = b->sip;
    if (!s)
        return;
    for (struct bs_conn *c = s->conns; c; c = c->next)
        if (c->link)
            xs_link_close(c->link, XS_OK);
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->udp, NULL);
    uv_close((uv_handle_t *)&s->dq_timer, NULL);
}

void bench_sip_free(struct bench *b)
{
    struct bench_sip *s = b->sip;
    while (s && s->dq_head) {
        struct bs_delayed *d = s->dq_head;
        s->dq_head = d->next;
        free(d);
    }
    if (s && s->dq_full)
        fprintf(stderr,
                "xsbench: %lu SIP answers were sent at once, not after --sip-delay: "
                "more than %d were waiting\n",
                s->dq_full, BS_DELAYED_MAX);
    if (b->sip && b->sip->udp_drops)
        fprintf(stderr, "xsbench: %lu SIP responses over UDP could not be sent (socket full)\n",
                b->sip->udp_drops);
    free(b->sip);
    b->sip = NULL;
}
