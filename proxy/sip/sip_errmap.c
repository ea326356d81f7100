/* RFC 7247 §7: SIP response codes <-> XMPP stanza error conditions.
 *
 * SIP -> XMPP (§7.2, Table 3) is followed row by row, including the class
 * fallbacks (other 3xx -> redirect, 4xx -> bad-request, 5xx ->
 * internal-server-error, 6xx -> recipient-unavailable). Two rows carry an
 * address: 301 becomes <gone/> with the new address from the response's
 * Contact as its character data (note 1; the SIP URI is given as it is,
 * since RFC 6120 §8.3.3.5 takes any URI and only the SIP side knows the
 * address), and other 3xx become <redirect/> with the Contact likewise
 * (RFC 6120 §8.3.3.14). Deviation: a 301 without a usable Contact gives
 * <gone/> without an address, as there is none to give.
 *
 * XMPP -> SIP (§7.1, Table 2). Where the RFC offers two codes the choice
 * follows its notes; the gateway addresses bare JIDs only, so note 2's 6xx
 * codes apply:
 *   feature-not-implemented -> 501 (note 1, bare JID);
 *   item-not-found -> 604, not-acceptable -> 606, recipient-unavailable
 *                              -> 600 (note 2,
 *                              bare JID: the answer holds for every device of
 *                              the user, so a SIP client should not try
 *                              elsewhere);
 *   gone                    -> 301 with Contact when the <gone/> names a new
 *                              address, else 410 (note 3);
 *   unexpected-request      -> 400 (491 Request Pending only makes sense
 *                              inside an INVITE dialog).
 *   forbidden               -> 403, the RFC's first choice, not note 2's
 *                              603: the gateway's own refusals (the
 *                              allow-list, a policy's reject) are forbidden
 *                              too, and they are no user's decline; 603
 *                              tells a SIP client that the callee refused
 *                              on every device. It also keeps a policy's
 *                              reject(403) a 403 on the wire.
 * Deliberate deviations, each because the RFC's code would break RFC 3261:
 *   not-authorized          -> 403, not 401: a 401 MUST carry
 *                              WWW-Authenticate (RFC 3261 §21.4.2), and the
 *                              gateway has no challenge to offer; an edge
 *                              proxy would take it for a broken challenge;
 *   registration-required   -> 403, not 407: a 407 MUST carry
 *                              Proxy-Authenticate (§21.4.8), same reason;
 *   redirect                -> 302 with Contact when the <redirect/> names an
 *                              address, else 480 (Temporarily Unavailable):
 *                              a 3xx without Contact gives the client nothing
 *                              to retry at (§21.3), and <redirect/> is a
 *                              temporary condition;
 *   gone with an address the gateway cannot write as a SIP URI (not xmpp:,
 *                              sip: or sips:) -> 410, the address going
 *                              into the Warning text instead.
 *   service-unavailable     -> 403: note 5 calls 503 NOT RECOMMENDED (a SIP
 *                              element reads 503 as "this whole server is
 *                              down" and backs off from the gateway for every
 *                              user) and names 403 and 405 as closest; 405
 *                              would need an Allow header about a method we
 *                              do accept. The gateway's own overload and
 *                              shutdown do not come through this table: the
 *                              SIP side answers them itself with 503 and
 *                              Retry-After (sip_txn.c).
 *   remote-server-not-found -> 404 (note 4, case a: the domain does not
 *                              exist, or answers nothing usable). Case b, a
 *                              domain whose DNS cannot be reached, is told
 *                              apart where it is known: the XMPP side reports
 *                              a DNS timeout as remote-server-timeout, which
 *                              is 408 (s2s_out.c on_resolved). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sip/sip.h"

enum xs_cond xs_sip_status_to_cond(int status)
{
    if (status >= 100 && status < 300)
        return XS_COND_NONE;
    switch (status) {
    case 301:
    case 410:
        return XS_COND_GONE;
    case 380:
    case 406:
    case 415:
    case 416:
    case 421:
    case 482:
    case 483:
    case 488:
    case 505:
    case 606:
        return XS_COND_NOT_ACCEPTABLE;
    case 400:
    case 402: /* payment-required left XMPP with RFC 6120 (note 2) */
    case 493:
        return XS_COND_BAD_REQUEST;
    case 401:
        return XS_COND_NOT_AUTHORIZED;
    case 403:
        return XS_COND_FORBIDDEN;
    case 404:
    case 481:
    case 484:
    case 485:
    case 604:
        return XS_COND_ITEM_NOT_FOUND;
    case 405:
    case 420:
    case 439:
    case 501:
        return XS_COND_FEATURE_NOT_IMPLEMENTED;
    case 407:
        return XS_COND_REGISTRATION_REQUIRED;
    case 408:
    case 504:
        return XS_COND_REMOTE_SERVER_TIMEOUT;
    case 413:
    case 414:
    case 440:
    case 489:
    case 513:
        return XS_COND_POLICY_VIOLATION;
    case 423:
        return XS_COND_RESOURCE_CONSTRAINT;
    case 430:
    case 480:
    case 486:
    case 487:
    case 600:
    case 603:
        return XS_COND_RECIPIENT_UNAVAILABLE;
    case 491:
        return XS_COND_UNEXPECTED_REQUEST;
    case 500:
    case 503: /* note 9: the SIP server's trouble, not the recipient's */
        return XS_COND_INTERNAL_SERVER_ERROR;
    case 502:
        return XS_COND_REMOTE_SERVER_NOT_FOUND;
    }
    if (status >= 300 && status < 400)
        return XS_COND_REDIRECT;
    if (status >= 400 && status < 500)
        return XS_COND_BAD_REQUEST;
    if (status >= 500 && status < 600)
        return XS_COND_INTERNAL_SERVER_ERROR;
    if (status >= 600 && status < 700)
        return XS_COND_RECIPIENT_UNAVAILABLE;
    return XS_COND_UNDEFINED_CONDITION;
}

int xs_sip_cond_to_status(enum xs_cond cond)
{
    switch (cond) {
    case XS_COND_NONE:
        return 200;
    case XS_COND_BAD_REQUEST:
    case XS_COND_CONFLICT:
    case XS_COND_JID_MALFORMED:
    case XS_COND_SUBSCRIPTION_REQUIRED:
    case XS_COND_UNDEFINED_CONDITION:
    case XS_COND_UNEXPECTED_REQUEST:
        return 400;
    case XS_COND_FEATURE_NOT_IMPLEMENTED:
        return 501;
    case XS_COND_FORBIDDEN:
    case XS_COND_NOT_ALLOWED:
    case XS_COND_NOT_AUTHORIZED:
    case XS_COND_POLICY_VIOLATION:
    case XS_COND_REGISTRATION_REQUIRED:
    case XS_COND_SERVICE_UNAVAILABLE:
        return 403;
    case XS_COND_GONE:
        return 410;
    case XS_COND_INTERNAL_SERVER_ERROR:
    case XS_COND_RESOURCE_CONSTRAINT:
        return 500;
    case XS_COND_ITEM_NOT_FOUND:
        return 604;
    case XS_COND_REMOTE_SERVER_NOT_FOUND:
        return 404;
    case XS_COND_NOT_ACCEPTABLE:
        return 606;
    case XS_COND_RECIPIENT_UNAVAILABLE:
        return 600;
    case XS_COND_REDIRECT:
        return 480;
    case XS_COND_REMOTE_SERVER_TIMEOUT:
        return 408;
    case XS_COND_COUNT_:
        break;
    }
    return 500;
}

/* RFC 3261 user = 1*( unreserved / escaped / user-unreserved ). */
static int sip_user_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("-_.!~*'()&=+$,;?/", c));
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* XEP-0106 unescapes (lower-case hex only: "CASE IS SIGNIFICANT"). */
static int xep0106_char(const char *p)
{
    static const char pairs[] = "20 22\"26&27'2f/3a:3c<3e>40@5c\\";
    if (p[0] != '\\' || !p[1] || !p[2])
        return -1;
    for (const char *q = pairs; *q; q += 3)
        if (p[1] == q[0] && p[2] == q[1])
            return (unsigned char)q[2];
    return -1;
}

/* An XMPP URI (RFC 5122: "xmpp:" ["//" authority "/"] jid ["?" query]
 * ["#" fragment]) as the SIP URI RFC 7247 §6.5 maps its bare JID to. Returns
 * 0, or -1 when it is not one this gateway can write. */
static int xmpp_to_sip(const char *a, size_t n, char *out, size_t outn)
{
    const char *p = a + 5, *end = a + n;
    if (end - p >= 2 && p[0] == '/' && p[1] == '/') {
        p = memchr(p + 2, '/', (size_t)(end - p - 2));
        if (!p)
            return -1;
        p++;
    }
    char jid[XS_COND_ADDR_MAX + 1];
    size_t j = 0;
    for (; p < end && *p != '?' && *p != '#'; p++) {
        if (*p == '%') {
            int hi = p + 2 < end ? hexval(p[1]) : -1, lo = hi >= 0 ? hexval(p[2]) : -1;
            if (lo < 0 || (hi == 0 && lo < 0x20))
                return -1;
            jid[j++] = (char)(hi * 16 + lo);
            p += 2;
        } else {
            jid[j++] = *p;
        }
    }
    jid[j] = '\0';
    char *slash = strchr(jid, '/');
    if (slash)
        *slash = '\0';
    char *at = strchr(jid, '@');
    const char *domain = at ? at + 1 : jid;
    size_t dl = strlen(domain);
    if (dl == 0 || dl > 253)
        return -1;
    for (const char *d = domain; *d; d++)
        if (!((*d >= 'a' && *d <= 'z') || (*d >= 'A' && *d <= 'Z') || (*d >= '0' && *d <= '9') ||
              strchr("-.[]:", *d)))
            return -1;
    size_t o = (size_t)snprintf(out, outn, "sip:");
    if (at) {
        if (at == jid)
            return -1;
        const char *l = jid;
        for (; l < at && o + 4 < outn; l++) {
            int c = xep0106_char(l);
            if (c >= 0)
                l += 2;
            else
                c = (unsigned char)*l;
            if (sip_user_char((unsigned char)c))
                out[o++] = (char)c;
            else
                o += (size_t)snprintf(out + o, outn - o, "%%%02X", c);
        }
        if (l < at || o + 1 >= outn)
            return -1;
        out[o++] = '@';
    }
    for (const char *d = domain; *d && o + 1 < outn; d++)
        out[o++] = (char)((*d >= 'A' && *d <= 'Z') ? *d - 'A' + 'a' : *d);
    if (o + 1 >= outn)
        return -1;
    out[o] = '\0';
    return 0;
}

void xs_sip_error_for(enum xs_cond cond, const char *text, struct xs_sip_error *out)
{
    const char *addr;
    size_t al;
    out->status = xs_sip_cond_to_status(cond);
    out->text = xs_cond_text_addr(text, &addr, &al);
    out->contact[0] = '\0';
    if (!addr || (cond != XS_COND_GONE && cond != XS_COND_REDIRECT)) {
        out->text = text;
        return;
    }
    char uri[XS_COND_ADDR_MAX + 1];
    int ok = 0;
    if (al > 5 && strncasecmp(addr, "xmpp:", 5) == 0) {
        ok = xmpp_to_sip(addr, al, uri, sizeof uri) == 0;
    } else if ((al > 4 && strncasecmp(addr, "sip:", 4) == 0) ||
               (al > 5 && strncasecmp(addr, "sips:", 5) == 0)) {
        memcpy(uri, addr, al);
        uri[al] = '\0';
        /* Headers in a redirect URI would be copied into the client's next
         * request (RFC 3261 §19.1.5); a remote XMPP server gets to name an
         * address, not to add header fields. */
        char *at = strchr(uri, '@');
        char *q = strchr(at ? at : uri, '?');
        if (q)
            *q = '\0';
        ok = 1;
    }
    if (!ok) {
        /* No SIP URI to retry at: the address stays in the Warning text. */
        out->text = text;
        return;
    }
    snprintf(out->contact, sizeof out->contact, "Contact: <%s>\r\n", uri);
    out->status = cond == XS_COND_GONE ? 301 : 302;
    if (!out->text[0])
        out->text = NULL;
}

enum xs_cond xs_sip_response_cond(const osip_message_t *resp, char *text, size_t n)
{
    int code = resp->status_code;
    enum xs_cond cond = xs_sip_status_to_cond(code);
    const char *phrase = resp->reason_phrase ? resp->reason_phrase : "";
    osip_contact_t *c = NULL;
    char *uri = NULL;
    /* 410 MUST NOT name a new address (RFC 7247 §7.2 note 1); 301 and the
     * other 3xx take theirs from the first Contact. */
    if ((code == 301 || cond == XS_COND_REDIRECT) && osip_message_get_contact(resp, 0, &c) >= 0 &&
        c && c->url)
        osip_uri_to_str(c->url, &uri);
    const char *a;
    size_t al;
    snprintf(text, n, "<%s> SIP %d %.100s", uri ? uri : "", code, phrase);
    if (!uri || (xs_cond_text_addr(text, &a, &al), a == NULL))
        snprintf(text, n, "SIP %d %.100s", code, phrase);
    osip_free(uri);
    return cond;
}
