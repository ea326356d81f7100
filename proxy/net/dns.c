/* The loop's resolver: c-ares driven by libuv. c-ares tells us which
 * sockets to watch (sock_state_cb) and when it next needs to run for its
 * retransmissions (ares_timeout); one uv_poll per socket and one uv_timer
 * feed that back into ares_process_fd. Lookups therefore cost no thread and
 * never wait behind one another: a domain whose servers never answer holds
 * one entry of the in-flight budget until its deadline, and nothing else.
 *
 * On top of c-ares: a hard deadline per lookup (timeout x tries, whatever
 * c-ares' own backoff would do), a cap on lookups on the wire, and bounded
 * positive and negative caches. Every outcome, even one known at once (an
 * IP literal, a cache hit, c-ares answering from the hosts file inside the
 * call), is delivered from the loop through one ready queue, so callbacks
 * never run inside the call that started them nor inside c-ares.
 *
 * A request is freed once three things are over: c-ares holds no pointer to
 * it (its callback came, even after our deadline), it is in no queue, and
 * its caller is done with it (called back, or cancelled). */
#include "net/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/err.h"
#include "net/dns_int.h"

#define DNS_MAX_TARGETS 32
#define DNS_MAX_ADDRS 32
#define DNS_CLASS_IN 1
#define DNS_TYPE_SRV 33

enum req_kind { REQ_SRV, REQ_ADDR };

struct dns_poll {
    uv_poll_t poll;
    struct xs_dns *dns;
    ares_socket_t fd;
    struct dns_poll *next;
};

struct xs_dns {
    uv_loop_t *loop;
    ares_channel channel;
    uv_timer_t ares_timer;  /* c-ares' retransmissions and its own timeouts */
    uv_timer_t deadline;    /* the earliest lookup deadline */
    uv_timer_t ready_timer; /* delivers finished lookups from the loop */
    struct dns_poll *polls;
    /* Lookups on the wire, oldest first. All get the same span, so this
     * order is also deadline order and one timer serves them all. */
    struct xs_dns_req *pending_head, *pending_tail;
    struct xs_dns_req *ready_head, *ready_tail;
    size_t n_ready;
    struct xs__dns_cache pos, neg;
    uint64_t span_ms;
    unsigned max_inflight, neg_ttl_s, pos_min_ttl_s, pos_max_ttl_s;
    struct xs_dns_stats stats;
    uint64_t seed;
    int closing;
    int handles; /* open handles; the last close frees the resolver */
    void (*closed)(void *ud);
    void *closed_ud;
};

struct xs_dns_req {
    struct xs_dns *dns;
    enum req_kind kind;
    struct xs_dns_req *prev, *next; /* pending list */
    struct xs_dns_req *ready_next;
    xs_dns_srv_cb srv_cb;
    xs_dns_addr_cb addr_cb;
    void *ud;
    uint64_t deadline;
    int in_ares;  /* c-ares holds this pointer */
    int pending;  /* in the pending list */
    int queued;   /* in the ready queue */
    int finished; /* called back, or cancelled */
    int status;
    uint16_t port;
    size_t n;
    char name[256];
    char key[272]; /* cache key, also the SRV query name after its first byte */
    union {
        struct xs_dns_target targets[DNS_MAX_TARGETS];
        struct sockaddr_storage addrs[DNS_MAX_ADDRS];
    } u;
};

static void maybe_free(struct xs_dns_req *r)
{
    if (r->finished && !r->in_ares && !r->queued)
        free(r);
}

static void pending_unlink(struct xs_dns_req *r)
{
    struct xs_dns *dns = r->dns;
    if (!r->pending)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        dns->pending_head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        dns->pending_tail = r->prev;
    r->prev = r->next = NULL;
    r->pending = 0;
    if (!dns->pending_head && !dns->closing)
        uv_timer_stop(&dns->deadline); /* so an idle resolver keeps no loop alive */
}

static void on_deadline(uv_timer_t *t);

static void pending_push(struct xs_dns_req *r)
{
    struct xs_dns *dns = r->dns;
    r->deadline = uv_now(dns->loop) + dns->span_ms;
    r->prev = dns->pending_tail;
    r->next = NULL;
    if (dns->pending_tail)
        dns->pending_tail->next = r;
    else
        dns->pending_head = r;
    dns->pending_tail = r;
    r->pending = 1;
    if (!uv_is_active((uv_handle_t *)&dns->deadline))
        uv_timer_start(&dns->deadline, on_deadline, dns->span_ms, 0);
}

static void on_ready(uv_timer_t *t);

/* The outcome is known: queue it for delivery from the loop. */
static void complete(struct xs_dns_req *r, int status)
{
    struct xs_dns *dns = r->dns;
    if (r->finished || r->queued)
        return;
    pending_unlink(r);
    r->status = status;
    if (status != 0)
        r->n = 0;
    r->queued = 1;
    r->ready_next = NULL;
    if (dns->ready_tail)
        dns->ready_tail->ready_next = r;
    else
        dns->ready_head = r;
    dns->ready_tail = r;
    dns->n_ready++;
    if (!uv_is_active((uv_handle_t *)&dns->ready_timer))
        uv_timer_start(&dns->ready_timer, on_ready, 0, 0);
}

static struct xs_dns_req *ready_pop(struct xs_dns *dns)
{
    struct xs_dns_req *r = dns->ready_head;
    if (!r)
        return NULL;
    dns->ready_head = r->ready_next;
    if (!dns->ready_head)
        dns->ready_tail = NULL;
    dns->n_ready--;
    r->queued = 0;
    return r;
}

static uint64_t next_seed(struct xs_dns *dns)
{
    dns->seed = dns->seed * 6364136223846793005ull + 1442695040888963407ull;
    return dns->seed;
}

/* What the caller of xs_dns_srv sees, from the lookup's outcome: the
 * RFC 2782 and RFC 6120 rules are applied here, after the cache, so a
 * cached answer gets a fresh weighted order each time. */
static void deliver_srv(struct xs_dns_req *r)
{
    struct xs_dns_target *t = r->u.targets;
    int rc = r->status;
    size_t n = r->n;
    if (rc == XS_ENOTFOUND || (rc == 0 && n == 0)) {
        /* RFC 6120 section 3.2.2: no SRV records, connect to the domain. */
        memset(&t[0], 0, sizeof t[0]);
        memcpy(t[0].host, r->name, sizeof t[0].host);
        t[0].port = r->port;
        rc = 0;
        n = 1;
    } else if (rc == 0 && n == 1 && strcmp(t[0].host, ".") == 0) {
        rc = XS_ENOTFOUND; /* RFC 2782: the service is decidedly not available */
    } else if (rc == 0) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (strcmp(t[i].host, ".") != 0)
                t[k++] = t[i];
        n = k;
        uint64_t seed = next_seed(r->dns);
        xs_dns_weighted_order(t, n, &seed);
        if (n == 0)
            rc = XS_ENOTFOUND;
    }
    r->srv_cb(r->ud, rc, rc == 0 ? t : NULL, rc == 0 ? n : 0);
}

static void deliver_addr(struct xs_dns_req *r)
{
    for (size_t i = 0; i < r->n; i++) {
        struct sockaddr_storage *ss = &r->u.addrs[i];
        if (ss->ss_family == AF_INET)
            ((struct sockaddr_in *)ss)->sin_port = htons(r->port);
        else
            ((struct sockaddr_in6 *)ss)->sin6_port = htons(r->port);
    }
    r->addr_cb(r->ud, r->status, r->status == 0 ? r->u.addrs : NULL, r->status == 0 ? r->n : 0);
}

static void deliver(struct xs_dns_req *r)
{
    r->finished = 1;
    if (r->kind == REQ_SRV)
        deliver_srv(r);
    else
        deliver_addr(r);
    maybe_free(r);
}

/* Only what was queued when the timer fired: callbacks that start lookups
 * answered from the cache are delivered on the next turn, so a caller that
 * retries at once cannot hold the loop here. */
static void on_ready(uv_timer_t *t)
{
    struct xs_dns *dns = t->data;
    size_t batch = dns->n_ready;
    struct xs_dns_req *r;
    while (batch-- > 0 && (r = ready_pop(dns)) != NULL) {
        if (r->finished)
            maybe_free(r);
        else
            deliver(r);
    }
    if (dns->ready_head && !dns->closing)
        uv_timer_start(&dns->ready_timer, on_ready, 0, 0);
}

static void remember(struct xs_dns_req *r, int status, uint32_t ttl_s)
{
    struct xs_dns *dns = r->dns;
    uint64_t now = uv_now(dns->loop);
    if (status == 0) {
        if (ttl_s < dns->pos_min_ttl_s)
            ttl_s = dns->pos_min_ttl_s;
        if (ttl_s > dns->pos_max_ttl_s)
            ttl_s = dns->pos_max_ttl_s;
        size_t size = r->n * (r->kind == REQ_SRV ? sizeof r->u.targets[0] : sizeof r->u.addrs[0]);
        xs__dns_cache_put(&dns->pos, r->key, now, now + (uint64_t)ttl_s * 1000, 0, &r->u, size,
                          r->n);
    } else if (status != XS_ENOMEM && status != XS_ECLOSED) {
        xs__dns_cache_put(&dns->neg, r->key, now, now + (uint64_t)dns->neg_ttl_s * 1000, status,
                          NULL, 0, 0);
    }
}

/* Every lookup still on the wire past its deadline fails now; c-ares may
 * still answer later, and that answer is dropped. */
static void on_deadline(uv_timer_t *t)
{
    struct xs_dns *dns = t->data;
    uint64_t now = uv_now(dns->loop);
    struct xs_dns_req *r;
    while ((r = dns->pending_head) != NULL && r->deadline <= now) {
        remember(r, XS_ETIMEOUT, 0);
        complete(r, XS_ETIMEOUT);
    }
    if (dns->pending_head)
        uv_timer_start(&dns->deadline, on_deadline, dns->pending_head->deadline - now, 0);
}

static int map_ares(int status)
{
    switch (status) {
    case ARES_SUCCESS:
        return 0;
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
    case ARES_ENONAME:
        return XS_ENOTFOUND;
    case ARES_ETIMEOUT:
        return XS_ETIMEOUT;
    case ARES_ENOMEM:
        return XS_ENOMEM;
    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED:
        return XS_ECLOSED;
    default:
        return XS_EDNS; /* SERVFAIL, REFUSED, FORMERR, a bad answer, ... */
    }
}

/* Common head of both c-ares callbacks: 1 when the outcome is still
 * wanted. */
static int ares_returned(struct xs_dns_req *r, int status)
{
    r->in_ares = 0;
    r->dns->stats.inflight--;
    if (r->finished || r->queued || status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
        maybe_free(r); /* cancelled, past its deadline, or the resolver is closing */
        return 0;
    }
    return 1;
}

static void on_srv_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct xs_dns_req *r = arg;
    if (!ares_returned(r, status))
        return;
    int rc = map_ares(status);
    uint32_t ttl = 0;
    r->n = 0;
    if (rc == 0) {
        int n = xs__dns_parse_srv_ttl(abuf, alen > 0 ? (size_t)alen : 0, r->u.targets,
                                      DNS_MAX_TARGETS, &ttl);
        if (n >= 0)
            r->n = (size_t)n;
        else
            rc = n == XS_ENOTFOUND ? XS_ENOTFOUND : XS_EDNS;
    }
    remember(r, rc, ttl);
    complete(r, rc);
}

/* c-ares 1.28 hands answers over as parsed records and deprecates the raw
 * form (Debian 13 has 1.34); our own bounded, fuzzed parser reads wire
 * format, so the record is written back into it. Chosen once, here. */
#if ARES_VERSION >= 0x011c00
static void on_srv_record(void *arg, ares_status_t status, size_t timeouts,
                          const ares_dns_record_t *rec)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    if (status == ARES_SUCCESS && (!rec || ares_dns_write(rec, &buf, &len) != ARES_SUCCESS))
        status = ARES_EBADRESP;
    on_srv_answer(arg, (int)status, (int)timeouts, buf, len > INT_MAX ? INT_MAX : (int)len);
    ares_free_string(buf);
}

static void query_srv(ares_channel ch, const char *name, void *arg)
{
    /* A request that cannot even be queued is answered through the
     * callback too, so the status returned here says nothing new. */
    (void)ares_query_dnsrec(ch, name, ARES_CLASS_IN, ARES_REC_TYPE_SRV, on_srv_record, arg, NULL);
}
#else
static void query_srv(ares_channel ch, const char *name, void *arg)
{
    ares_query(ch, name, DNS_CLASS_IN, DNS_TYPE_SRV, on_srv_answer, arg);
}
#endif

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct xs_dns_req *r = arg;
    if (ares_returned(r, status)) {
        int rc = map_ares(status);
        uint32_t ttl = UINT32_MAX;
        r->n = 0;
        for (struct ares_addrinfo_node *ai = res ? res->nodes : NULL;
             rc == 0 && ai && r->n < DNS_MAX_ADDRS; ai = ai->ai_next) {
            if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
                ai->ai_addrlen > sizeof r->u.addrs[0])
                continue;
            memset(&r->u.addrs[r->n], 0, sizeof r->u.addrs[0]);
            memcpy(&r->u.addrs[r->n++], ai->ai_addr, ai->ai_addrlen);
            uint32_t t = ai->ai_ttl > 0 ? (uint32_t)ai->ai_ttl : 0;
            if (t < ttl)
                ttl = t;
        }
        if (rc == 0 && r->n == 0)
            rc = XS_ENOTFOUND;
        remember(r, rc, ttl);
        complete(r, rc);
    }
    if (res)
        ares_freeaddrinfo(res);
}

static void on_ares_timer(uv_timer_t *t);

/* c-ares says when it next needs to run (a retransmission or its own
 * timeout); after every call into it the timer follows. */
static void rearm(struct xs_dns *dns)
{
    if (dns->closing)
        return;
    struct timeval tv;
    struct timeval *tvp = ares_timeout(dns->channel, NULL, &tv);
    if (!tvp) {
        uv_timer_stop(&dns->ares_timer);
        return;
    }
    uint64_t ms = (uint64_t)tvp->tv_sec * 1000 + ((uint64_t)tvp->tv_usec + 999) / 1000;
    uv_timer_start(&dns->ares_timer, on_ares_timer, ms, 0);
}

static void on_ares_timer(uv_timer_t *t)
{
    struct xs_dns *dns = t->data;
    ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm(dns);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct dns_poll *p = h->data;
    struct xs_dns *dns = p->dns;
    /* On a poll error let c-ares read and write, so it meets the error
     * itself and moves the query on. */
    ares_socket_t rfd = (status < 0 || (events & UV_READABLE)) ? p->fd : ARES_SOCKET_BAD;
    ares_socket_t wfd = (status < 0 || (events & UV_WRITABLE)) ? p->fd : ARES_SOCKET_BAD;
    /* c-ares may close this socket inside the call; p is not touched after. */
    ares_process_fd(dns->channel, rfd, wfd);
    rearm(dns);
}

static void handle_gone(struct xs_dns *dns);

static void on_poll_closed(uv_handle_t *h)
{
    struct dns_poll *p = h->data;
    struct xs_dns *dns = p->dns;
    free(p);
    handle_gone(dns);
}

static void poll_close(struct xs_dns *dns, struct dns_poll *p)
{
    struct dns_poll **pp = &dns->polls;
    while (*pp && *pp != p)
        pp = &(*pp)->next;
    if (*pp)
        *pp = p->next;
    uv_close((uv_handle_t *)&p->poll, on_poll_closed);
}

/* c-ares opens, watches and closes its sockets through this. It is called
 * before the socket is closed, so the poll handle leaves epoll in time. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct xs_dns *dns = data;
    struct dns_poll *p = dns->polls;
    while (p && p->fd != fd)
        p = p->next;
    if (!readable && !writable) {
        if (p)
            poll_close(dns, p);
        return;
    }
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p)
            return; /* the query then times out, which is its bound anyway */
        if (uv_poll_init_socket(dns->loop, &p->poll, fd) != 0) {
            free(p);
            return;
        }
        p->dns = dns;
        p->fd = fd;
        p->poll.data = p;
        p->next = dns->polls;
        dns->polls = p;
        dns->handles++;
    }
    uv_poll_start(&p->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
}

static unsigned or_default(unsigned v, unsigned def)
{
    return v ? v : def;
}

int xs_dns_new(uv_loop_t *loop, const struct xs_dns_opts *opts, struct xs_dns **out)
{
    static const struct xs_dns_opts none;
    if (!opts)
        opts = &none;
    *out = NULL;
    if (loop->data)
        return XS_EEXISTS;
    struct xs_dns *dns = calloc(1, sizeof *dns);
    if (!dns)
        return XS_ENOMEM;
    dns->loop = loop;
    unsigned timeout_ms = or_default(opts->timeout_ms, 2000);
    unsigned tries = or_default(opts->tries, 2);
    dns->span_ms = (uint64_t)timeout_ms * tries;
    dns->max_inflight = or_default(opts->max_inflight, 1024);
    dns->neg_ttl_s = or_default(opts->neg_ttl_s, 30);
    dns->pos_min_ttl_s = or_default(opts->pos_min_ttl_s, 5);
    dns->pos_max_ttl_s = or_default(opts->pos_max_ttl_s, 300);
    if (dns->pos_max_ttl_s < dns->pos_min_ttl_s)
        dns->pos_max_ttl_s = dns->pos_min_ttl_s;
    unsigned cache_max = or_default(opts->cache_max, 512);
    if (getrandom(&dns->seed, sizeof dns->seed, GRND_NONBLOCK) != sizeof dns->seed)
        dns->seed = uv_hrtime() ^ (uint64_t)(uintptr_t)dns;

    int rc = XS_ENOMEM;
    if (xs__dns_cache_init(&dns->pos, cache_max) != 0 ||
        xs__dns_cache_init(&dns->neg, cache_max) != 0)
        goto fail_cache;
    int ares_rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (ares_rc != ARES_SUCCESS) {
        rc = XS_EDNS;
        goto fail_cache;
    }
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = dns;
    o.timeout = (int)timeout_ms;
    o.tries = (int)tries;
    ares_rc = ares_init_options(&dns->channel, &o,
                                ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (ares_rc != ARES_SUCCESS) {
        rc = ares_rc == ARES_ENOMEM ? XS_ENOMEM : XS_EDNS;
        goto fail_lib;
    }
    if (opts->servers && ares_set_servers_ports_csv(dns->channel, opts->servers) != ARES_SUCCESS) {
        rc = XS_EINVAL;
        goto fail_channel;
    }
    uv_timer_init(loop, &dns->ares_timer);
    uv_timer_init(loop, &dns->deadline);
    uv_timer_init(loop, &dns->ready_timer);
    dns->ares_timer.data = dns->deadline.data = dns->ready_timer.data = dns;
    dns->handles = 3;
    loop->data = dns;
    *out = dns;
    return 0;

fail_channel:
    ares_destroy(dns->channel);
fail_lib:
    ares_library_cleanup();
fail_cache:
    xs__dns_cache_free(&dns->neg);
    xs__dns_cache_free(&dns->pos);
    free(dns);
    return rc;
}

struct xs_dns *xs_dns_of(uv_loop_t *loop)
{
    return loop ? loop->data : NULL;
}

void xs_dns_stats(const struct xs_dns *dns, struct xs_dns_stats *out)
{
    *out = dns->stats;
}

/* The resolver is freed when its last handle has closed, which can only
 * happen after xs_dns_close: the three timers stay open until then. */
static void handle_gone(struct xs_dns *dns)
{
    if (--dns->handles > 0)
        return;
    xs__dns_cache_free(&dns->neg);
    xs__dns_cache_free(&dns->pos);
    void (*done)(void *) = dns->closed;
    void *ud = dns->closed_ud;
    free(dns);
    if (done)
        done(ud);
}

static void on_handle_closed(uv_handle_t *h)
{
    handle_gone(h->data);
}

void xs_dns_close(struct xs_dns *dns, void (*done)(void *ud), void *ud)
{
    if (!dns || dns->closing)
        return;
    dns->closing = 1;
    dns->closed = done;
    dns->closed_ud = ud;
    if (dns->loop->data == dns)
        dns->loop->data = NULL;
    /* c-ares calls back every query it holds (ARES_EDESTRUCTION), which
     * only drops its pointers; then the callers hear XS_ECLOSED. */
    ares_destroy(dns->channel);
    ares_library_cleanup();
    struct xs_dns_req *r;
    while ((r = dns->pending_head) != NULL) {
        pending_unlink(r);
        r->status = XS_ECLOSED;
        r->n = 0;
        deliver(r);
    }
    while ((r = ready_pop(dns)) != NULL) {
        if (r->finished) {
            maybe_free(r);
        } else {
            r->status = XS_ECLOSED;
            r->n = 0;
            deliver(r);
        }
    }
    while (dns->polls)
        poll_close(dns, dns->polls);
    uv_close((uv_handle_t *)&dns->ares_timer, on_handle_closed);
    uv_close((uv_handle_t *)&dns->deadline, on_handle_closed);
    uv_close((uv_handle_t *)&dns->ready_timer, on_handle_closed);
}

static int valid_label_chars(const char *s, const char *extra)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || strchr(extra, c)))
            return 0;
    }
    return 1;
}

static int valid_host(const char *s)
{
    return valid_label_chars(s, "._") && s[0] != '.' && !strstr(s, "..");
}

static struct xs_dns_req *req_new(struct xs_dns *dns, enum req_kind kind, const char *name,
                                  uint16_t port, void *ud)
{
    struct xs_dns_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->dns = dns;
    r->kind = kind;
    r->ud = ud;
    r->port = port;
    size_t len = strlen(name);
    memcpy(r->name, name, len + 1);
    if (len > 1 && r->name[len - 1] == '.')
        r->name[len - 1] = '\0';
    return r;
}

/* Answers from the caches when they know. Returns 1 when it did. */
static int from_cache(struct xs_dns_req *r)
{
    struct xs_dns *dns = r->dns;
    uint64_t now = uv_now(dns->loop);
    const struct xs__dns_cache_entry *e = xs__dns_cache_get(&dns->neg, r->key, now);
    if (!e)
        e = xs__dns_cache_get(&dns->pos, r->key, now);
    if (!e)
        return 0;
    dns->stats.cache_hits++;
    r->n = e->n;
    if (e->data)
        memcpy(&r->u, e->data,
               e->n * (r->kind == REQ_SRV ? sizeof r->u.targets[0] : sizeof r->u.addrs[0]));
    complete(r, e->status);
    return 1;
}

/* Leaves the request with c-ares, or refuses it when the budget is spent.
 * Returns 0 or XS_ELIMIT (the request is then freed). */
static int send_query(struct xs_dns_req *r)
{
    struct xs_dns *dns = r->dns;
    if (dns->stats.inflight >= dns->max_inflight) {
        dns->stats.refused++;
        free(r);
        return XS_ELIMIT;
    }
    dns->stats.queries++;
    dns->stats.inflight++;
    r->in_ares = 1;
    pending_push(r);
    /* c-ares may call back inside these calls (the hosts file, a send
     * that fails at once); complete() only queues. */
    if (r->kind == REQ_SRV) {
        query_srv(dns->channel, r->key + 1, r);
    } else {
        struct ares_addrinfo_hints hints;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        ares_getaddrinfo(dns->channel, r->name, NULL, &hints, on_addrinfo, r);
    }
    rearm(dns);
    return 0;
}

static int start(struct xs_dns_req *r, struct xs_dns_req **out)
{
    if (!from_cache(r)) {
        int rc = send_query(r);
        if (rc != 0)
            return rc;
    }
    if (out)
        *out = r;
    return 0;
}

int xs_dns_srv(uv_loop_t *loop, const char *service, const char *domain, uint16_t default_port,
               xs_dns_srv_cb cb, void *ud, struct xs_dns_req **out)
{
    if (out)
        *out = NULL;
    if (!service || !domain || !cb || !*service || !*domain)
        return XS_EINVAL;
    size_t dlen = strlen(domain);
    if (dlen > 253 || strlen(service) > 63 || !valid_label_chars(service, ""))
        return XS_EINVAL;
    int literal = xs_net_is_ip_literal(domain);
    if (!literal && !valid_host(domain))
        return XS_EINVAL;
    struct xs_dns *dns = xs_dns_of(loop);
    if (!dns || dns->closing)
        return XS_ESTATE;
    struct xs_dns_req *r = req_new(dns, REQ_SRV, domain, default_port, ud);
    if (!r)
        return XS_ENOMEM;
    r->srv_cb = cb;
    if (literal) {
        complete(r, 0); /* no records: deliver_srv's fallback gives {domain, port} */
        if (out)
            *out = r;
        return 0;
    }
    snprintf(r->key, sizeof r->key, "S_%s._tcp.%s", service, r->name);
    return start(r, out);
}

int xs_dns_addr(uv_loop_t *loop, const char *host, uint16_t port, xs_dns_addr_cb cb, void *ud,
                struct xs_dns_req **out)
{
    if (out)
        *out = NULL;
    if (!host || !*host || !cb || strlen(host) > 253 || !valid_host(host))
        return XS_EINVAL;
    struct xs_dns *dns = xs_dns_of(loop);
    if (!dns || dns->closing)
        return XS_ESTATE;
    struct xs_dns_req *r = req_new(dns, REQ_ADDR, host, port, ud);
    if (!r)
        return XS_ENOMEM;
    r->addr_cb = cb;
    snprintf(r->key, sizeof r->key, "A%s", r->name);
    return start(r, out);
}

void xs_dns_cancel(struct xs_dns_req *req)
{
    if (!req || req->finished)
        return;
    req->finished = 1;
    pending_unlink(req);
    maybe_free(req);
}
