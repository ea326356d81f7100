/* RFC 7247 §8: SIP response codes <-> XMPP stanza error conditions.
 *
 * Where the RFC offers two codes for one condition, the choice made here is
 * the one that fits a MESSAGE transaction:
 *   feature-not-implemented -> 501 (405 is only for an unsupported method,
 *                              which the gateway answers itself);
 *   gone                    -> 410 (301 needs a new address, which a
 *                              condition alone does not carry);
 *   remote-server-not-found -> 404 (the permanent reading; 408 is for
 *                              temporary failures, and a timeout has its
 *                              own condition);
 *   unexpected-request      -> 400 (491 Request Pending only makes sense
 *                              inside an INVITE dialog).
 * Codes the tables do not name fall back by class, as the RFC says: other
 * 3xx -> redirect, other 4xx -> bad-request, other 5xx ->
 * internal-server-error, other 6xx -> service-unavailable. */
#include "sip/sip.h"

enum xs_cond xs_sip_status_to_cond(int status)
{
    if (status >= 100 && status < 300)
        return XS_COND_NONE;
    if (status >= 300 && status < 400)
        return XS_COND_REDIRECT;
    switch (status) {
    case 400:
    case 402: /* payment-required left XMPP with RFC 6120 */
    case 415:
    case 416:
    case 420:
    case 421:
    case 423:
    case 493:
    case 513:
        return XS_COND_BAD_REQUEST;
    case 401:
    case 407:
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
    case 439:
    case 501:
        return XS_COND_FEATURE_NOT_IMPLEMENTED;
    case 406:
    case 482:
    case 483:
    case 488:
    case 505:
    case 606:
        return XS_COND_NOT_ACCEPTABLE;
    case 408:
    case 504:
        return XS_COND_REMOTE_SERVER_TIMEOUT;
    case 410:
        return XS_COND_GONE;
    case 413:
    case 414:
    case 440:
        return XS_COND_POLICY_VIOLATION;
    case 430:
    case 480:
    case 486:
        return XS_COND_RECIPIENT_UNAVAILABLE;
    case 487:
    case 503:
    case 600:
    case 603:
        return XS_COND_SERVICE_UNAVAILABLE;
    case 491:
        return XS_COND_UNEXPECTED_REQUEST;
    case 500:
        return XS_COND_INTERNAL_SERVER_ERROR;
    case 502:
        return XS_COND_REMOTE_SERVER_NOT_FOUND;
    }
    if (status >= 400 && status < 500)
        return XS_COND_BAD_REQUEST;
    if (status >= 500 && status < 600)
        return XS_COND_INTERNAL_SERVER_ERROR;
    if (status >= 600 && status < 700)
        return XS_COND_SERVICE_UNAVAILABLE;
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
    case XS_COND_REGISTRATION_REQUIRED:
    case XS_COND_SUBSCRIPTION_REQUIRED:
    case XS_COND_UNDEFINED_CONDITION:
    case XS_COND_UNEXPECTED_REQUEST:
        return 400;
    case XS_COND_FEATURE_NOT_IMPLEMENTED:
        return 501;
    case XS_COND_FORBIDDEN:
    case XS_COND_NOT_ALLOWED:
    case XS_COND_POLICY_VIOLATION:
        return 403;
    case XS_COND_GONE:
        return 410;
    case XS_COND_INTERNAL_SERVER_ERROR:
    case XS_COND_RESOURCE_CONSTRAINT:
        return 500;
    case XS_COND_ITEM_NOT_FOUND:
    case XS_COND_REMOTE_SERVER_NOT_FOUND:
        return 404;
    case XS_COND_NOT_ACCEPTABLE:
        return 406;
    case XS_COND_NOT_AUTHORIZED:
        return 401;
    case XS_COND_RECIPIENT_UNAVAILABLE:
        return 480;
    case XS_COND_REDIRECT:
        return 302;
    case XS_COND_REMOTE_SERVER_TIMEOUT:
        return 408;
    case XS_COND_SERVICE_UNAVAILABLE:
        return 503;
    case XS_COND_COUNT_:
        break;
    }
    return 500;
}
