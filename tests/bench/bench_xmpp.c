/* The XMPP half of the bench: the tool is the server "bench.test".
 *
 * Our stream to the gateway (client role) carries the XMPP->SIP load: header,
 * features, optional STARTTLS, <db:result/> with any key, then messages once
 * the gateway says valid. Streams the gateway opens to us (server role) carry
 * its dialback checks (<db:verify/>, answered valid) and its own
 * authentication (<db:result/>, also valid: a bench trusts), then the
 * SIP->XMPP load. Both roles share one stream object and one dispatcher:
 * what a stream receives tells what it is for. */
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "core/err.h"
#include "net/link.h"
#include "xmpp/xml.h"

#define NS_SERVER "jabber:server"
#define NS_STREAMS "http://etherx.jabber.org/streams"
#define NS_DIALBACK "jabber:server:dialback"
#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SM "urn:xmpp:sm:3"

#define BX_OUT_MAX (8u << 20)
#define BX_STREAMS_MAX 64
/* Bytes written and not yet taken by the kernel before a send waits. */
#define BX_BACKLOG_MAX (1u << 20)
/* Any hex will do: the gateway asks us (bench.test) whether it is valid. */
#define BX_KEY "b3c4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2"

static const char stream_header_fmt[] =
    "<?xml version='1.0'?><stream:stream xmlns='" NS_SERVER "' xmlns:stream='" NS_STREAMS
    "' xmlns:db='" NS_DIALBACK "' from='%s' to='%s'%s%s%s version='1.0'>";

enum bx_state {
    BX_CONNECTING,
    BX_WAIT_HEADER,
    BX_WAIT_FEATURES, /* client only */
    BX_WAIT_PROCEED,  /* client only */
    BX_TLS,           /* handshake under way, parser gone */
    BX_WAIT_RESULT,   /* client only: db:result sent */
    BX_OPEN,          /* client: authenticated; server: header answered */
    BX_CLOSED,
};

struct bx_stream {
    struct bench *b;
    struct bench_xmpp *x;
    struct xs_link *link;
    struct xs_xml_parser *parser;
    int client;
    int tls_on;
    int tls_pending;    /* STARTTLS agreed inside a parser callback; done after feed returns */
    int sm_on;          /* XEP-0198 enabled by the gateway on this (server-role) stream */
    unsigned long sm_h; /* stanzas received since, as <a h=.../> reports them */
    enum bx_state state;
    char id[64]; /* the stream id: the gateway's (client) or ours (server) */
    struct bx_stream *next;
};

struct bench_xmpp {
    struct bench *b;
    uv_tcp_t listener;
    int listening;
    struct bx_stream *streams;
    size_t n_streams;
    unsigned long next_id;
    struct bx_stream *client;
    uv_connect_t creq;
    uv_timer_t reconnect;
    int attempts;
    char out[1024]; /* every stanza we write is formatted here */
};

static const struct xs_xml_limits bx_limits = {
    .max_stanza_bytes = 256 * 1024,
    .max_depth = 32,
    .max_attrs = 64,
};

static void bx_stream_open(void *ud, const struct xs_xml_el *header);
static void bx_stanza(void *ud, struct xs_xml_el *el);
static void bx_stream_close(void *ud);

static const struct xs_xml_cbs bx_cbs = {
    .stream_open = bx_stream_open,
    .stanza = bx_stanza,
    .stream_close = bx_stream_close,
};

static int bx_write(struct bx_stream *s, const char *data, size_t len)
{
    if (!s->link || s->state == BX_CLOSED)
        return XS_ECLOSED;
    int rc = xs_link_write(s->link, data, len);
    if (rc != 0)
        bench_fatal(s->b, "xmpp: write on %s stream failed: %s", s->client ? "our" : "a peer",
                    xs_strerror(rc));
    return rc;
}

static int bx_printf(struct bx_stream *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int bx_printf(struct bx_stream *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->x->out, sizeof s->x->out, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof s->x->out)
        return XS_ELIMIT;
    return bx_write(s, s->x->out, (size_t)n);
}

static int bx_send_header(struct bx_stream *s, const char *from, const char *to, const char *id)
{
    return bx_printf(s, stream_header_fmt, from, to, id ? " id='" : "", id ? id : "",
                     id ? "'" : "");
}

static int bx_new_parser(struct bx_stream *s)
{
    if (s->parser)
        xs_xml_parser_free(s->parser);
    s->parser = xs_xml_parser_new(&bx_limits, &bx_cbs, s);
    return s->parser ? 0 : XS_ENOMEM;
}

static void bx_close(struct bx_stream *s, int reason)
{
    if (s->state == BX_CLOSED)
        return;
    s->state = BX_CLOSED;
    if (s->link)
        xs_link_close(s->link, reason);
}

static void bx_on_data(void *ud, const char *data, size_t len)
{
    struct bx_stream *s = ud;
    if (!s->parser || s->state == BX_CLOSED)
        return;
    int rc = xs_xml_parser_feed(s->parser, data, len);
    if (s->tls_pending) {
        /* What followed <starttls/> or <proceed/> in this read belongs to no
         * stream: the parser dropped it, and TLS starts from the next byte. */
        s->tls_pending = 0;
        xs_xml_parser_free(s->parser);
        s->parser = NULL;
        s->state = BX_TLS;
        rc = xs_link_start_tls(s->link, s->b->tls, !s->client, s->client ? BENCH_GW_DOMAIN : NULL);
        if (rc != 0)
            bench_fatal(s->b, "xmpp: cannot start TLS: %s", xs_strerror(rc));
        return;
    }
    if (rc != 0 && s->state != BX_CLOSED) {
        const char *cond = xs_xml_parser_condition(s->parser);
        bench_fatal(s->b, "xmpp: bad XML from the gateway (%s): %s", cond ? cond : "-",
                    xs_xml_parser_detail(s->parser));
        bx_close(s, XS_EPROTO);
    }
}

static void bx_on_tls_ready(void *ud)
{
    struct bx_stream *s = ud;
    s->tls_on = 1;
    s->state = BX_WAIT_HEADER;
    if (bx_new_parser(s) != 0) {
        bench_fatal(s->b, "xmpp: out of memory");
        return;
    }
    if (s->client)
        bx_send_header(s, BENCH_DOMAIN, BENCH_GW_DOMAIN, NULL);
}

static void bx_unlink(struct bx_stream *s)
{
    struct bench_xmpp *x = s->x;
    for (struct bx_stream **pp = &x->streams; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            x->n_streams--;
            break;
        }
    }
    if (x->client == s)
        x->client = NULL;
}

static void bx_on_closed(void *ud, int reason)
{
    struct bx_stream *s = ud;
    struct bench *b = s->b;
    int was_client = s->client;
    s->link = NULL;
    s->state = BX_CLOSED;
    bx_unlink(s);
    if (s->parser)
        xs_xml_parser_free(s->parser);
    free(s);
    if (!b->stopping && (was_client || reason != XS_ECLOSED))
        bench_fatal(b, "xmpp: %s stream closed: %s", was_client ? "our" : "a peer",
                    xs_strerror(reason));
}

static const struct xs_link_cbs bx_link_cbs = {
    .data = bx_on_data,
    .tls_ready = bx_on_tls_ready,
    .closed = bx_on_closed,
};

static struct bx_stream *bx_stream_new(struct bench_xmpp *x, int client)
{
    struct bx_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->b = x->b;
    s->x = x;
    s->client = client;
    if (bx_new_parser(s) != 0) {
        free(s);
        return NULL;
    }
    s->next = x->streams;
    x->streams = s;
    x->n_streams++;
    return s;
}

static void bx_stream_open(void *ud, const struct xs_xml_el *header)
{
    struct bx_stream *s = ud;
    if (s->state != BX_WAIT_HEADER) {
        bench_fatal(s->b, "xmpp: unexpected stream header");
        return;
    }
    if (s->client) {
        const char *id = xs_xml_el_attr(header, "id");
        snprintf(s->id, sizeof s->id, "%s", id ? id : "");
        s->state = BX_WAIT_FEATURES;
        return;
    }
    const char *from = xs_xml_el_attr(header, "from");
    if (!s->tls_on)
        snprintf(s->id, sizeof s->id, "xsb%lu", ++s->x->next_id);
    bx_send_header(s, BENCH_DOMAIN, from ? from : BENCH_GW_DOMAIN, s->id);
    if (s->b->o.tls && !s->tls_on)
        bx_printf(s, "<stream:features><starttls xmlns='" NS_TLS
                     "'><required/></starttls></stream:features>");
    else
        bx_printf(s,
                  "<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>%s"
                  "</stream:features>",
                  s->b->o.no_sm ? "" : "<sm xmlns='" NS_SM "'/>");
    s->state = BX_OPEN;
}

static void bx_stream_close(void *ud)
{
    struct bx_stream *s = ud;
    if (!s->b->stopping)
        bench_fatal(s->b, "xmpp: the gateway closed a stream");
    bx_close(s, XS_ECLOSED);
}

static void bx_features(struct bx_stream *s, struct xs_xml_el *el)
{
    if (!s->client || s->state != BX_WAIT_FEATURES)
        return;
    int offered = xs_xml_el_child(el, NS_TLS, "starttls") != NULL;
    if (s->b->o.tls && !s->tls_on) {
        if (!offered) {
            bench_fatal(s->b, "xmpp: --tls given but the gateway offers no STARTTLS");
            return;
        }
        bx_printf(s, "<starttls xmlns='" NS_TLS "'/>");
        s->state = BX_WAIT_PROCEED;
        return;
    }
    bx_printf(s,
              "<db:result from='" BENCH_DOMAIN "' to='" BENCH_GW_DOMAIN "'>" BX_KEY "</db:result>");
    s->state = BX_WAIT_RESULT;
}

static void bx_dialback(struct bx_stream *s, struct xs_xml_el *el)
{
    const char *type = xs_xml_el_attr(el, "type");
    const char *from = xs_xml_el_attr(el, "from");
    const char *id = xs_xml_el_attr(el, "id");
    if (!from)
        from = BENCH_GW_DOMAIN;
    if (!strcmp(el->name, "verify")) {
        if (type)
            return;
        bx_printf(s, "<db:verify from='" BENCH_DOMAIN "' to='%s' id='%s' type='valid'/>", from,
                  id ? id : "");
        return;
    }
    if (strcmp(el->name, "result"))
        return;
    if (!type) {
        bx_printf(s, "<db:result from='" BENCH_DOMAIN "' to='%s' type='valid'/>", from);
        return;
    }
    if (!s->client || s->state != BX_WAIT_RESULT)
        return;
    if (strcmp(type, "valid")) {
        bench_fatal(s->b, "xmpp: the gateway refused our dialback (type=%s)", type);
        return;
    }
    s->state = BX_OPEN;
    bench_xmpp_ready(s->b);
}

/* The first child element (an error condition), skipping whitespace. */
static const struct xs_xml_el *first_child(const struct xs_xml_el *el)
{
    for (size_t i = 0; el && i < el->n_children; i++)
        if (!el->children[i].is_text)
            return el->children[i].u.el;
    return NULL;
}

/* The sequence number is the first word of the body: "SEQ T". */
static long bx_body_seq(const struct xs_xml_el *msg)
{
    const struct xs_xml_el *body = xs_xml_el_child(msg, NULL, "body");
    if (!body)
        return -1;
    for (size_t i = 0; i < body->n_children; i++) {
        if (!body->children[i].is_text)
            continue;
        const char *t = body->children[i].u.text;
        char *end;
        long seq = strtol(t, &end, 10);
        return end != t ? seq : -1;
    }
    return -1;
}

static void bx_message(struct bx_stream *s, struct xs_xml_el *el)
{
    const char *type = xs_xml_el_attr(el, "type");
    if (type && !strcmp(type, "error")) {
        /* A bounce of one of ours (XMPP->SIP): its id is the sequence number. */
        const char *id = xs_xml_el_attr(el, "id");
        char what[64] = "error";
        const struct xs_xml_el *err = xs_xml_el_child(el, NULL, "error");
        const struct xs_xml_el *cond = first_child(err);
        const char *etype = err ? xs_xml_el_attr(err, "type") : NULL;
        if (cond)
            snprintf(what, sizeof what, "%s/%s", cond->name, etype ? etype : "-");
        bench_msg_error(s->b, BENCH_X2S, id ? strtol(id, NULL, 10) : -1, what);
        return;
    }
    bench_arrived(s->b, BENCH_S2X, bx_body_seq(el), 0);
}

/* XEP-0198 on the streams the gateway opens, as Prosody offers it on s2s:
 * <enable/> is answered <enabled/> (no resumption), each <r/> with the
 * count of stanzas received. With --no-sm nothing is offered and a request
 * is refused with <failed/>, as a server without it does. */
static void bx_sm(struct bx_stream *s, const struct xs_xml_el *el)
{
    if (s->client)
        return;
    if (!strcmp(el->name, "enable")) {
        if (s->b->o.no_sm || s->sm_on) {
            bx_printf(s, "<failed xmlns='" NS_SM "'><unexpected-request "
                         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
            return;
        }
        s->sm_on = 1;
        s->sm_h = 0;
        s->b->sm_streams++;
        bx_printf(s, "<enabled xmlns='" NS_SM "'/>");
    } else if (!strcmp(el->name, "r") && s->sm_on) {
        s->b->sm_acks++;
        bx_printf(s, "<a xmlns='" NS_SM "' h='%lu'/>", s->sm_h & 0xffffffffUL);
    }
}

static void bx_stanza(void *ud, struct xs_xml_el *el)
{
    struct bx_stream *s = ud;
    if (s->sm_on && !strcmp(el->ns, NS_SERVER) &&
        (!strcmp(el->name, "message") || !strcmp(el->name, "presence") || !strcmp(el->name, "iq")))
        s->sm_h++;
    if (!strcmp(el->ns, NS_STREAMS) && !strcmp(el->name, "features")) {
        bx_features(s, el);
    } else if (!strcmp(el->ns, NS_STREAMS) && !strcmp(el->name, "error")) {
        const struct xs_xml_el *cond = first_child(el);
        bench_fatal(s->b, "xmpp: stream error from the gateway: %s", cond ? cond->name : "?");
    } else if (!strcmp(el->ns, NS_TLS) && !strcmp(el->name, "proceed")) {
        if (s->client && s->state == BX_WAIT_PROCEED) {
            s->tls_pending = 1;
            xs_xml_parser_stop(s->parser);
        }
    } else if (!strcmp(el->ns, NS_TLS) && !strcmp(el->name, "starttls")) {
        if (!s->client && s->b->o.tls && !s->tls_on) {
            bx_printf(s, "<proceed xmlns='" NS_TLS "'/>");
            s->tls_pending = 1;
            xs_xml_parser_stop(s->parser);
        }
    } else if (!strcmp(el->ns, NS_DIALBACK)) {
        bx_dialback(s, el);
    } else if (!strcmp(el->ns, NS_SM)) {
        bx_sm(s, el);
    } else if (!strcmp(el->name, "message")) {
        bx_message(s, el);
    }
    xs_xml_el_free(el);
}

static void bx_on_accept(uv_stream_t *server, int status)
{
    struct bench_xmpp *x = server->data;
    if (status < 0)
        return;
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (!tcp)
        return;
    uv_tcp_init(x->b->loop, tcp);
    if (uv_accept(server, (uv_stream_t *)tcp) != 0 || x->n_streams >= BX_STREAMS_MAX ||
        x->b->stopping) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return;
    }
    struct bx_stream *s = bx_stream_new(x, 0);
    if (!s) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return;
    }
    s->state = BX_WAIT_HEADER;
    s->link = xs_link_new(tcp, &bx_link_cbs, s, BX_OUT_MAX);
    if (!s->link) {
        bx_unlink(s);
        xs_xml_parser_free(s->parser);
        free(s);
    }
}

int bench_xmpp_listen(struct bench *b)
{
    struct bench_xmpp *x = calloc(1, sizeof *x);
    if (!x)
        return XS_ENOMEM;
    x->b = b;
    b->xmpp = x;
    uv_timer_init(b->loop, &x->reconnect);
    x->reconnect.data = x;
    uv_tcp_init(b->loop, &x->listener);
    x->listener.data = x;
    x->listening = 1;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", b->peer_port, &sa);
    int rc = uv_tcp_bind(&x->listener, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&x->listener, 64, bx_on_accept);
    struct sockaddr_in bound;
    int len = sizeof bound;
    if (rc == 0)
        rc = uv_tcp_getsockname(&x->listener, (struct sockaddr *)&bound, &len);
    if (rc == 0)
        b->peer_port = ntohs(bound.sin_port);
    if (rc != 0) {
        fprintf(stderr, "xsbench: cannot listen on 127.0.0.1:%d: %s\n", b->peer_port,
                uv_strerror(rc));
        return XS_EIO;
    }
    return 0;
}

static void bx_try_connect(struct bench_xmpp *x);

static void bx_on_reconnect(uv_timer_t *t)
{
    bx_try_connect(t->data);
}

static void bx_on_connect(uv_connect_t *req, int status)
{
    struct bench_xmpp *x = req->data;
    uv_tcp_t *tcp = (uv_tcp_t *)req->handle;
    struct bench *b = x->b;
    if (status < 0 || b->stopping) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        if (b->stopping)
            return;
        /* A gateway started a moment ago may not listen yet. */
        if (status == UV_ECONNREFUSED && ++x->attempts < 100) {
            uv_timer_start(&x->reconnect, bx_on_reconnect, 100, 0);
            return;
        }
        bench_fatal(b, "xmpp: cannot connect to 127.0.0.1:%d: %s", b->gw_xmpp_port,
                    uv_strerror(status));
        return;
    }
    struct bx_stream *s = bx_stream_new(x, 1);
    if (!s) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        bench_fatal(b, "xmpp: out of memory");
        return;
    }
    x->client = s;
    s->state = BX_WAIT_HEADER;
    s->link = xs_link_new(tcp, &bx_link_cbs, s, BX_OUT_MAX);
    if (!s->link) {
        bx_unlink(s);
        xs_xml_parser_free(s->parser);
        free(s);
        bench_fatal(b, "xmpp: out of memory");
        return;
    }
    bx_send_header(s, BENCH_DOMAIN, BENCH_GW_DOMAIN, NULL);
}

static void bx_try_connect(struct bench_xmpp *x)
{
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (!tcp) {
        bench_fatal(x->b, "xmpp: out of memory");
        return;
    }
    uv_tcp_init(x->b->loop, tcp);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", x->b->gw_xmpp_port, &sa);
    x->creq.data = x;
    int rc = uv_tcp_connect(&x->creq, tcp, (const struct sockaddr *)&sa, bx_on_connect);
    if (rc != 0) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        bench_fatal(x->b, "xmpp: connect: %s", uv_strerror(rc));
    }
}

void bench_xmpp_connect(struct bench *b)
{
    b->xmpp->attempts = 0;
    bx_try_connect(b->xmpp);
}

int bench_xmpp_send(struct bench *b, long seq, uint64_t now)
{
    struct bx_stream *s = b->xmpp->client;
    if (!s || s->state != BX_OPEN)
        return XS_ESTATE;
    /* The gateway not reading is backpressure, not a failure: the message
     * waits (closed loop) or goes out late (open loop). */
    if (xs_link_accepted(s->link) - xs_link_flushed(s->link) > BX_BACKLOG_MAX)
        return XS_EAGAIN;
    return bx_printf(s,
                     "<message from='u@" BENCH_DOMAIN "' to='bob@" BENCH_GW_DOMAIN
                     "' type='chat' id='%ld'><body>%ld %llu</body></message>",
                     seq, seq, (unsigned long long)now);
}

void bench_xmpp_close(struct bench *b)
{
    struct bench_xmpp *x = b->xmpp;
    if (!x)
        return;
    for (struct bx_stream *s = x->streams; s; s = s->next) {
        if (s->state != BX_CLOSED && s->link) {
            bx_write(s, "</stream:stream>", 16);
            bx_close(s, XS_OK);
        }
    }
    uv_timer_stop(&x->reconnect);
    uv_close((uv_handle_t *)&x->reconnect, NULL);
    if (x->listening)
        uv_close((uv_handle_t *)&x->listener, NULL);
}

void bench_xmpp_free(struct bench *b)
{
    free(b->xmpp);
    b->xmpp = NULL;
}
