/* The SIP transports' datagrams: UDP sockets read with recvmmsg, their
 * kernel buffers, and sends that queue (bounded) when the socket is full.
 * The sockets themselves are opened by sip_transport.c (listeners) and
 * sip_nexthop.c (the way out). */
#define _GNU_SOURCE /* recvmmsg */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/err.h"
#include "core/log.h"
#include "sip/sip_frame.h"
#include "sip/sip_tp_int.h"

void xs__sip_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct xs_sip_tp *tp = *(struct xs_sip_tp **)h->data;
    buf->base = tp->rbuf;
    buf->len = XS__SIP_RECV_SLOTS * XS__SIP_DGRAM_MAX;
}

void xs__sip_udp_init(struct xs_sip_tp *tp, struct xs__sip_listener *l)
{
    uv_udp_init_ex(tp->loop, &l->h.udp, AF_UNSPEC | UV_UDP_RECVMMSG);
    l->h.udp.data = l;
}

/* Sets one buffer and reads back what the kernel made of it: Linux reports
 * twice what it grants (the other half is its bookkeeping). */
static void udp_buffer(struct xs__sip_listener *l, int recv, size_t want)
{
    if (!want)
        return;
    int v = want > (size_t)INT32_MAX / 2 ? INT32_MAX / 2 : (int)want;
    uv_handle_t *h = (uv_handle_t *)&l->h.udp;
    int rc = recv ? uv_recv_buffer_size(h, &v) : uv_send_buffer_size(h, &v);
    int got = 0;
    if (rc == 0)
        rc = recv ? uv_recv_buffer_size(h, &got) : uv_send_buffer_size(h, &got);
    size_t granted = rc == 0 ? (size_t)got / 2 : 0;
    if (granted < want)
        xs_log(XS_LOG_WARN, "sip.udp",
               "socket=%d buffer=%s wanted=%zu granted=%zu reason=\"the kernel caps it: raise "
               "net.core.%s\"",
               l->index, recv ? "recv" : "send", want, granted, recv ? "rmem_max" : "wmem_max");
}

void xs__sip_udp_buffers(struct xs_sip_tp *tp, struct xs__sip_listener *l)
{
    udp_buffer(l, 1, tp->lim.udp_recv_buffer);
    udp_buffer(l, 0, tp->lim.udp_send_buffer);
}

struct udp_send {
    uv_udp_send_t req;
    char data[];
};

static void on_udp_sent(uv_udp_send_t *req, int status)
{
    if (status < 0 && status != UV_ECANCELED)
        xs_log(XS_LOG_WARN, "sip.send", "transport=udp result=failed reason=%s",
               xs_errname(xs__sip_from_uv(status)));
    free(req);
}

int xs__sip_udp_send(struct xs_sip_tp *tp, uv_udp_t *h, const struct sockaddr *addr,
                     const char *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_udp_try_send(h, &b, 1, addr);
    if (n == (int)len)
        return 0;
    if (n != UV_EAGAIN)
        return XS_EIO;
    if (uv_udp_get_send_queue_size(h) + len > tp->lim.out_max)
        return XS_ELIMIT;
    struct udp_send *s = malloc(sizeof *s + len);
    if (!s)
        return XS_ENOMEM;
    memcpy(s->data, data, len);
    b = uv_buf_init(s->data, (unsigned)len);
    if (uv_udp_send(&s->req, h, &b, 1, addr, on_udp_sent) != 0) {
        free(s);
        return XS_EIO;
    }
    return 0;
}

/* One datagram (data borrowed) from addr on listener l. */
static void udp_deliver(struct xs__sip_listener *l, const char *d, size_t n,
                        const struct sockaddr *addr, int truncated)
{
    struct xs_sip_tp *tp = l->tp;
    struct xs_sip_peer p = {.transport = XS_SIP_UDP, .sock = l->index};
    memcpy(&p.addr, addr, xs_net_addr_len(addr));
    xs_net_addr_format(addr, p.desc, sizeof p.desc);
    if (truncated) {
        xs_log(XS_LOG_WARN, "sip.drop", "transport=udp peer=%s reason=\"datagram truncated\"",
               p.desc);
        return;
    }
    /* CRLF keepalives (RFC 5626 §3.5.1) carry nothing to answer. */
    while (n && (*d == '\r' || *d == '\n')) {
        d++;
        n--;
    }
    if (!n)
        return;
    size_t msg_len, hdr_len;
    int rc = xs_sip_frame(d, n, n, 0, &msg_len, &hdr_len);
    if (rc < 0) {
        xs_log(XS_LOG_WARN, "sip.drop",
               "transport=udp peer=%s bytes=%zu reason=\"bad framing: %s\"", p.desc, n,
               xs_strerror(rc));
        return;
    }
    tp->cbs.message(tp->ud, &p, d, msg_len, msg_len > tp->lim.max_message);
}

/* libuv reads at most 32 datagrams from a socket per loop turn, while a
 * TCP stream is read up to 32 times 64 KiB: the XMPP side can bring
 * thousands of stanzas in one turn, and their thousands of SIP responses
 * come back on the one next-hop socket. Read at that pace, they would
 * overflow its kernel buffer, and every response lost is a retransmitted
 * request and a duplicate at the receiver. So once libuv's batch is done
 * (and its buffer free again), the socket is read on here with the same
 * recvmmsg, up to XS__SIP_UDP_TURN_MAX datagrams a turn. */
static void udp_drain(struct xs__sip_listener *l)
{
    struct xs_sip_tp *tp = l->tp;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&l->h.udp, &fd) != 0)
        return;
    struct mmsghdr msgs[XS__SIP_RECV_SLOTS];
    struct iovec iov[XS__SIP_RECV_SLOTS];
    struct sockaddr_storage from[XS__SIP_RECV_SLOTS];
    for (int got = 0; got < XS__SIP_UDP_TURN_MAX;) {
        if (tp->closing || uv_is_closing((uv_handle_t *)&l->h.udp))
            return;
        memset(msgs, 0, sizeof msgs);
        for (int k = 0; k < XS__SIP_RECV_SLOTS; k++) {
            iov[k].iov_base = tp->rbuf + (size_t)k * XS__SIP_DGRAM_MAX;
            iov[k].iov_len = XS__SIP_DGRAM_MAX;
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
            msgs[k].msg_hdr.msg_name = &from[k];
            msgs[k].msg_hdr.msg_namelen = sizeof from[k];
        }
        int n = recvmmsg(fd, msgs, XS__SIP_RECV_SLOTS, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        for (int k = 0; k < n && !tp->closing; k++)
            udp_deliver(l, iov[k].iov_base, msgs[k].msg_len, (struct sockaddr *)&from[k],
                        (msgs[k].msg_hdr.msg_flags & MSG_TRUNC) != 0);
        got += n;
        if (n < XS__SIP_RECV_SLOTS)
            return;
    }
}

void xs__sip_on_udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                         const struct sockaddr *addr, unsigned flags)
{
    struct xs__sip_listener *l = h->data;
    struct xs_sip_tp *tp = l->tp;
    if (nread < 0) {
        xs_log(XS_LOG_WARN, "sip.recv", "transport=udp result=failed reason=%s",
               xs_errname(xs__sip_from_uv((int)nread)));
        return;
    }
    if (tp->closing)
        return;
    /* With UV_UDP_RECVMMSG each datagram comes as a chunk of the buffer,
     * then one call with UV_UDP_MMSG_FREE and nothing in it says the batch
     * is over; the buffer is tp's own, never freed here. */
    if (flags & UV_UDP_MMSG_FREE) {
        udp_drain(l);
        return;
    }
    if (nread == 0 || !addr)
        return;
    udp_deliver(l, buf->base, (size_t)nread, addr, (flags & UV_UDP_PARTIAL) != 0);
}
