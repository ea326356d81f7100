/* SIP over verified TLS (issue 8), on the transport set: two sets on
 * loopback, one playing the SIP edge, with certificates from
 * tests/tls/make_test_pki.sh. Outbound, the edge's certificate must chain
 * to the CA and name sip.tls.name; inbound, the client certificate must
 * name one of sip.tls.peers; a reload re-checks; CRLF keepalives find a
 * dead peer and answer a live one. */
#include "core/err.h"
#include "core/log.h"
#include "sip/sip.h"
#include "sip/sip_transport.h"
#include "sip_testutil.h"
#include "tls/tls.h"

static char pki[256];

struct upper {
    int messages;
    int hops;
    int hop_status;
    struct xs_sip_tp *answer_on; /* answers each request 200 on this set */
};

static void on_message(void *ud, const struct xs_sip_peer *from, const char *data, size_t len,
                       int oversize)
{
    (void)oversize;
    struct upper *u = ud;
    u->messages++;
    if (u->answer_on && len < 4000) {
        char req[4096], resp[4096];
        memcpy(req, data, len);
        req[len] = '\0';
        size_t n = sip_test_respond(req, 200, "OK", resp, sizeof resp);
        xs_sip_tp_reply(u->answer_on, from, resp, n);
    }
}

static void on_next_hop(void *ud, int status)
{
    struct upper *u = ud;
    u->hops++;
    u->hop_status = status;
}

static const struct xs_sip_tp_cbs cbs = {.message = on_message, .next_hop = on_next_hop};

static void default_limits(struct xs_sip_tp_limits *lim)
{
    memset(lim, 0, sizeof *lim);
    lim->max_message = 4096;
    lim->max_conns = 256;
    lim->out_max = 1 << 20;
    lim->idle_ms = 300000;
    lim->warn_host = "sip.test";
}

/* A context presenting PKI certificate `stem`, trusting the test CA when
 * with_ca. NULL on failure. */
static struct xs_tls_ctx *ctx_for(const char *stem, int with_ca)
{
    char cert[512], key[512], ca[512], err[256];
    snprintf(cert, sizeof cert, "%s/%s.pem", pki, stem);
    snprintf(key, sizeof key, "%s/%s.key", pki, stem);
    snprintf(ca, sizeof ca, "%s/ca.pem", pki);
    const char *names[] = {"sip.test"};
    struct xs_tls_ctx_cfg c = {.cert_path = cert,
                               .key_path = key,
                               .names = names,
                               .n_names = 1,
                               .ca_path = with_ca ? ca : NULL};
    struct xs_tls_ctx *ctx = NULL;
    if (xs_tls_ctx_new_cfg(&c, &ctx, err, sizeof err) != 0)
        fprintf(stderr, "ctx %s: %s\n", stem, err);
    return ctx;
}

static int closed;
static void on_closed(void *ud)
{
    (void)ud;
    closed = 1;
}

static void close_tp(uv_loop_t *loop, struct xs_sip_tp *tp)
{
    if (!tp)
        return;
    closed = 0;
    xs_sip_tp_close(tp, on_closed, NULL);
    PUMP_UNTIL(loop, closed, 3000);
    CHECK(closed);
}

static const char msg[] = "MESSAGE sip:bob@edge.test SIP/2.0\r\n"
                          "Via: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bKx\r\n"
                          "From: <sip:a@sip.test>;tag=1\r\nTo: <sip:bob@edge.test>\r\n"
                          "Call-ID: c1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"
                          "Content-Length: 2\r\n\r\nhi";

/* The gateway connects out to an edge presenting `stem`; with verify ca
 * and sip.tls.name edge.test. want_ok: the way out opens, the verdict is
 * kept and a request arrives; else the way out fails once with XS_ETLS and
 * nothing reaches the edge. */
static void outbound(uv_loop_t *loop, const char *stem, int want_ok)
{
    struct xs_sip_tp_limits le, lg;
    default_limits(&le);
    le.tls = ctx_for(stem, 0);
    struct test_cfg te;
    test_cfg_init(&te, NULL, 0, XS_SIP_UDP);
    te.listen[1].transport = XS_SIP_TLS;
    struct upper ue = {0}, ug = {0};
    struct xs_sip_tp *edge = NULL, *gw = NULL;
    CHECK(le.tls && xs_sip_tp_start(loop, &te.cfg, &le, &cbs, &ue, &edge) == 0);
    if (le.tls)
        xs_tls_ctx_unref(le.tls);
    if (!edge)
        return;

    default_limits(&lg);
    lg.tls = ctx_for("sip.test", 1);
    lg.verify_ca = 1;
    char name[] = "edge.test";
    lg.tls_name = name;
    lg.local_name = "sip.test";
    struct test_cfg tg;
    test_cfg_init(&tg, "127.0.0.1", xs_sip_tp_port(edge, 1), XS_SIP_TLS);
    CHECK(xs_sip_tp_start(loop, &tg.cfg, &lg, &cbs, &ug, &gw) == 0);
    /* The transport copied the name: scribbling on ours changes nothing. */
    name[0] = 'X';
    xs_tls_ctx_unref(lg.tls);
    if (!gw) {
        close_tp(loop, edge);
        return;
    }
    struct xs_sip_local local;
    CHECK(xs_sip_tp_next_hop(gw, &local) == XS_EAGAIN);
    PUMP_UNTIL(loop, ug.hops > 0, 3000);
    struct xs_tls_peer v;
    const char *desc = NULL;
    if (want_ok) {
        CHECK(ug.hops == 1 && ug.hop_status == 0);
        CHECK(xs_sip_tp_out_tls(gw, &v, &desc) == 0);
        CHECK(v.chain == XS_TLS_CHAIN_OK && v.name_ok && strcmp(v.names, "edge.test") == 0);
        CHECK(v.reason[0] == '\0' && desc && strncmp(desc, "TLS", 3) == 0);
        CHECK(xs_sip_tp_send_next_hop(gw, msg, sizeof msg - 1) == 0);
        PUMP_UNTIL(loop, ue.messages > 0, 3000);
        CHECK(ue.messages == 1);
    } else {
        CHECK(ug.hops == 1 && ug.hop_status == XS_ETLS);
        /* The verdict that closed it stays for the ping to report. */
        CHECK(xs_sip_tp_out_tls(gw, &v, &desc) == 0);
        CHECK(v.reason[0] != '\0' && !(v.chain == XS_TLS_CHAIN_OK && v.name_ok));
        CHECK(xs_sip_tp_send_next_hop(gw, msg, sizeof msg - 1) != 0);
        pump(loop, 100);
        /* No reconnect loop, and nothing reached the edge. */
        CHECK(ug.hops == 1 && ue.messages == 0);
    }
    close_tp(loop, gw);
    close_tp(loop, edge);
}

/* The chain verdicts the outbound check keeps (seen through the ping API's
 * accessor while the connection is up, with verify none). */
static void outbound_unverified_verdict(uv_loop_t *loop, const char *stem, enum xs_tls_chain chain,
                                        int name_ok, const char *reason_part)
{
    struct xs_sip_tp_limits le, lg;
    default_limits(&le);
    le.tls = ctx_for(stem, 0);
    struct test_cfg te;
    test_cfg_init(&te, NULL, 0, XS_SIP_UDP);
    te.listen[1].transport = XS_SIP_TLS;
    struct upper ue = {0}, ug = {0};
    struct xs_sip_tp *edge = NULL, *gw = NULL;
    CHECK(le.tls && xs_sip_tp_start(loop, &te.cfg, &le, &cbs, &ue, &edge) == 0);
    if (le.tls)
        xs_tls_ctx_unref(le.tls);
    if (!edge)
        return;
    default_limits(&lg);
    lg.tls = ctx_for("sip.test", 1);
    lg.tls_name = "edge.test";
    struct test_cfg tg;
    test_cfg_init(&tg, "127.0.0.1", xs_sip_tp_port(edge, 1), XS_SIP_TLS);
    CHECK(xs_sip_tp_start(loop, &tg.cfg, &lg, &cbs, &ug, &gw) == 0);
    xs_tls_ctx_unref(lg.tls);
    if (gw) {
        struct xs_sip_local local;
        CHECK(xs_sip_tp_next_hop(gw, &local) == XS_EAGAIN);
        PUMP_UNTIL(loop, ug.hops > 0, 3000);
        CHECK(ug.hops == 1 && ug.hop_status == 0);
        struct xs_tls_peer v;
        const char *desc;
        CHECK(xs_sip_tp_out_tls(gw, &v, &desc) == 0);
        CHECK(v.chain == chain && v.name_ok == name_ok);
        if (!strstr(v.reason, reason_part))
            fprintf(stderr, "%s: reason \"%s\" lacks \"%s\"\n", stem, v.reason, reason_part);
        CHECK(strstr(v.reason, reason_part) != NULL);
    }
    close_tp(loop, gw);
    close_tp(loop, edge);
}

/* The edge connects in presenting `stem` to the gateway's tls: listener
 * with verify ca and sip.tls.peers `peers`; a request it sends is framed
 * only when want_ok. */
static void inbound(uv_loop_t *loop, const char *stem, const char *const *peers, size_t n_peers,
                    int want_ok)
{
    struct xs_sip_tp_limits lg, le;
    default_limits(&lg);
    lg.tls = ctx_for("sip.test", 1);
    lg.verify_ca = 1;
    lg.tls_peers = peers;
    lg.n_tls_peers = n_peers;
    struct test_cfg tg;
    test_cfg_init(&tg, NULL, 0, XS_SIP_UDP);
    tg.listen[1].transport = XS_SIP_TLS;
    struct upper ug = {0}, ue = {0};
    struct xs_sip_tp *gw = NULL, *edge = NULL;
    CHECK(lg.tls && xs_sip_tp_start(loop, &tg.cfg, &lg, &cbs, &ug, &gw) == 0);
    if (lg.tls)
        xs_tls_ctx_unref(lg.tls);
    if (!gw)
        return;
    default_limits(&le);
    le.tls = ctx_for(stem, 0);
    struct test_cfg te;
    test_cfg_init(&te, "127.0.0.1", xs_sip_tp_port(gw, 1), XS_SIP_TLS);
    CHECK(le.tls && xs_sip_tp_start(loop, &te.cfg, &le, &cbs, &ue, &edge) == 0);
    if (le.tls)
        xs_tls_ctx_unref(le.tls);
    if (edge) {
        struct xs_sip_local local;
        CHECK(xs_sip_tp_next_hop(edge, &local) == XS_EAGAIN);
        PUMP_UNTIL(loop, ue.hops > 0, 3000);
        /* The edge checks nothing: its handshake completes either way. */
        CHECK(ue.hops >= 1);
        if (ue.hop_status == 0)
            xs_sip_tp_send_next_hop(edge, msg, sizeof msg - 1);
        if (want_ok) {
            PUMP_UNTIL(loop, ug.messages > 0, 3000);
            CHECK(ug.messages == 1);
            /* A reload whose peers no longer name it closes it. */
            const char *other[] = {"other.test"};
            struct xs_sip_tp_limits l2;
            default_limits(&l2);
            l2.verify_ca = 1;
            l2.tls_peers = other;
            l2.n_tls_peers = 1;
            int before = ue.hops;
            xs_sip_tp_reconfigure(gw, &l2, &tg.cfg.sip_next_hop);
            PUMP_UNTIL(loop, ue.hops > before, 3000);
            CHECK(ue.hops == before + 1 && ue.hop_status == XS_ECLOSED);
        } else {
            pump(loop, 300);
            CHECK(ug.messages == 0);
        }
    }
    close_tp(loop, edge);
    close_tp(loop, gw);
}

/* RFC 5626 §4.4.1 on plain TCP: the gateway pings its idle way out; a live
 * peer (another set, which answers pings) keeps it, a peer that reads and
 * never answers is closed once pong_ms passed. */
static void keepalive(uv_loop_t *loop)
{
    struct xs_sip_tp_limits lp, lg;
    default_limits(&lp);
    struct test_cfg tpc;
    test_cfg_init(&tpc, NULL, 0, XS_SIP_UDP);
    struct upper up = {0}, ug = {0};
    struct xs_sip_tp *peer = NULL, *gw = NULL;
    CHECK(xs_sip_tp_start(loop, &tpc.cfg, &lp, &cbs, &up, &peer) == 0);
    if (!peer)
        return;
    default_limits(&lg);
    lg.keepalive_ms = 60;
    lg.pong_ms = 200;
    struct test_cfg tg;
    test_cfg_init(&tg, "127.0.0.1", xs_sip_tp_port(peer, 1), XS_SIP_TCP);
    CHECK(xs_sip_tp_start(loop, &tg.cfg, &lg, &cbs, &ug, &gw) == 0);
    if (gw) {
        struct xs_sip_local local;
        CHECK(xs_sip_tp_next_hop(gw, &local) == XS_EAGAIN);
        PUMP_UNTIL(loop, ug.hops > 0, 3000);
        CHECK(ug.hops == 1 && ug.hop_status == 0);
        /* Several pings and pongs: the way out stays, nothing is framed. */
        pump(loop, 800);
        CHECK(ug.hops == 1 && up.messages == 0 && ug.messages == 0);
    }
    close_tp(loop, gw);
    close_tp(loop, peer);

    /* A silent peer: a listening socket that accepts and never answers. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 4) == 0);
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    struct test_cfg td;
    test_cfg_init(&td, "127.0.0.1", ntohs(a.sin_port), XS_SIP_TCP);
    struct upper ud = {0};
    gw = NULL;
    CHECK(xs_sip_tp_start(loop, &td.cfg, &lg, &cbs, &ud, &gw) == 0);
    if (gw) {
        struct xs_sip_local local;
        CHECK(xs_sip_tp_next_hop(gw, &local) == XS_EAGAIN);
        PUMP_UNTIL(loop, ud.hops > 0, 3000);
        CHECK(ud.hops == 1 && ud.hop_status == 0);
        int fd = accept(lfd, NULL, NULL);
        CHECK(fd >= 0);
        PUMP_UNTIL(loop, ud.hops > 1, 3000);
        CHECK(ud.hops == 2 && ud.hop_status == XS_ECLOSED);
        /* It was pinged exactly with CRLFCRLF before it was dropped. */
        char buf[64];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        CHECK(n == 4 && memcmp(buf, "\r\n\r\n", 4) == 0);
        close(fd);
    }
    close_tp(loop, gw);
    close(lfd);
}

/* A ping received between messages is answered with one CRLF, even split
 * over two reads; a lone CRLF is not answered. */
static void answers_pings(uv_loop_t *loop)
{
    struct xs_sip_tp_limits l;
    default_limits(&l);
    struct test_cfg tc;
    test_cfg_init(&tc, NULL, 0, XS_SIP_UDP);
    struct upper u = {0};
    struct xs_sip_tp *tp = NULL;
    CHECK(xs_sip_tp_start(loop, &tc.cfg, &l, &cbs, &u, &tp) == 0);
    if (!tp)
        return;
    int fd = tcp_peer(xs_sip_tp_port(tp, 1));
    CHECK(fd >= 0);
    char buf[64];
    CHECK(send(fd, "\r\n", 2, 0) == 2);
    pump(loop, 50);
    CHECK(recv(fd, buf, sizeof buf, MSG_DONTWAIT) < 0);
    CHECK(send(fd, "\r\n", 2, 0) == 2);
    pump(loop, 50);
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    CHECK(n == 2 && memcmp(buf, "\r\n", 2) == 0);
    CHECK(send(fd, "\r\n\r\n\r\n\r\n", 8, 0) == 8);
    pump(loop, 50);
    n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    CHECK(n == 4 && memcmp(buf, "\r\n\r\n", 4) == 0);
    CHECK(u.messages == 0);
    close(fd);
    close_tp(loop, tp);
}

struct ping_result {
    int calls;
    int status;
    char reason[128];
    int had_peer;
    struct xs_tls_peer peer;
    char desc[64];
};

static void ping_cb(void *ud, int status, const char *reason, const struct xs_tls_peer *peer,
                    const char *tls_desc)
{
    struct ping_result *r = ud;
    r->calls++;
    r->status = status;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    r->had_peer = peer != NULL;
    if (peer)
        r->peer = *peer;
    snprintf(r->desc, sizeof r->desc, "%s", tls_desc);
}

/* xs_sip_ping over TLS (xsgw validate): the whole SIP side with sip.tls
 * verify ca and name edge.test sends OPTIONS to an edge presenting `stem`.
 * A good certificate: the edge's 200 with the verdict; a refused one: 503,
 * the edge saw nothing, and the verdict says why. */
static void ping(uv_loop_t *loop, const char *stem, int want_ok)
{
    struct xs_sip_tp_limits le;
    default_limits(&le);
    le.tls = ctx_for(stem, 0);
    struct test_cfg te;
    test_cfg_init(&te, NULL, 0, XS_SIP_UDP);
    te.listen[1].transport = XS_SIP_TLS;
    struct upper ue = {0};
    struct xs_sip_tp *edge = NULL;
    CHECK(le.tls && xs_sip_tp_start(loop, &te.cfg, &le, &cbs, &ue, &edge) == 0);
    if (le.tls)
        xs_tls_ctx_unref(le.tls);
    if (!edge)
        return;
    ue.answer_on = edge;
    struct test_cfg tg;
    test_cfg_init(&tg, "127.0.0.1", xs_sip_tp_port(edge, 1), XS_SIP_TLS);
    tg.cfg.sip_tls_verify = XS_VERIFY_CA;
    tg.cfg.sip_tls_name = "edge.test";
    struct xs_tls_ctx *ctx = ctx_for("sip.test", 1);
    struct xs_sip_opts opts;
    xs_sip_default_opts(&opts);
    struct xs_sip *sip = NULL;
    CHECK(ctx && xs_sip_start_opts(loop, &tg.cfg, ctx, &opts, NULL, NULL, &sip) == 0);
    if (ctx)
        xs_tls_ctx_unref(ctx);
    if (sip) {
        struct ping_result r = {0};
        CHECK(xs_sip_ping(sip, ping_cb, &r) == 0);
        PUMP_UNTIL(loop, r.calls > 0, 3000);
        CHECK(r.calls == 1 && r.had_peer);
        if (want_ok) {
            CHECK(r.status == 200 && strcmp(r.reason, "OK") == 0 && ue.messages == 1);
            CHECK(r.peer.chain == XS_TLS_CHAIN_OK && r.peer.name_ok &&
                  strncmp(r.desc, "TLS", 3) == 0);
        } else {
            CHECK(r.status == 503 && ue.messages == 0);
            CHECK(r.peer.reason[0] != '\0');
        }
        closed = 0;
        xs_sip_close(sip, on_closed, NULL);
        PUMP_UNTIL(loop, closed, 3000);
        CHECK(closed);
    }
    close_tp(loop, edge);
}

int main(void)
{
    xs_log_set_level(XS_LOG_ERROR);
    char tmpl[] = "/tmp/xs-test-sip-pki-XXXXXX"; /* mkdtemp(3) template */
    if (!mkdtemp(tmpl))
        return 1;
    snprintf(pki, sizeof pki, "%s", tmpl);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "tests/tls/make_test_pki.sh %s sip.test edge.test", pki);
    if (system(cmd) != 0) {
        fprintf(stderr, "make_test_pki.sh failed (is openssl installed?)\n");
        return 77;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    outbound(&loop, "edge.test", 1);
    outbound(&loop, "edge.test-wrongname", 0);
    outbound(&loop, "edge.test-expired", 0);
    outbound(&loop, "edge.test-otherca", 0);
    outbound(&loop, "edge.test-self", 0);
    outbound(&loop, "int.edge.test", 0);
    outbound_unverified_verdict(&loop, "int.edge.test", XS_TLS_CHAIN_OK, 0,
                                "presented int.edge.test; expected edge.test");
    outbound_unverified_verdict(&loop, "edge.test-expired", XS_TLS_CHAIN_EXPIRED, 1, "expired");
    outbound_unverified_verdict(&loop, "edge.test-otherca", XS_TLS_CHAIN_UNTRUSTED, 1, "");
    const char *peers[] = {"edge.test"};
    const char *wild[] = {"other.test", "*.edge.test"};
    inbound(&loop, "edge.test", peers, 1, 1);
    inbound(&loop, "int.edge.test", wild, 2, 1);
    inbound(&loop, "edge.test", wild, 2, 0);
    inbound(&loop, "edge.test-wrongname", peers, 1, 0);
    inbound(&loop, "edge.test-otherca", peers, 1, 0);
    inbound(&loop, "edge.test-expired", peers, 1, 0);
    ping(&loop, "edge.test", 1);
    ping(&loop, "edge.test-wrongname", 0);
    keepalive(&loop);
    answers_pings(&loop);
    pump(&loop, 50);
    CHECK(uv_loop_close(&loop) == 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", pki);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", pki);
    return check_report("test_sip_tls");
}
