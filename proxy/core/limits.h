/* Size limits that several modules must agree on. gateway.max_body (the
 * policy, lua/xsgw/policy.lua) is the one size a message may have; the
 * buffers a message passes through on the way out are bounded by what the
 * largest allowed body can become there, so that a body the policy accepts
 * is never refused by a buffer further on. The buffers grow on demand: these
 * are bounds, not allocations. */
#ifndef XS_CORE_LIMITS_H
#define XS_CORE_LIMITS_H

/* The largest gateway.max_body a policy may set (MAX_BODY_MAX in
 * lua/xsgw/policy.lua; policy.c refuses a configuration above it). */
#define XS_MAX_BODY_CEILING (1u << 20)

/* What a body of `body` bytes can take on the wire: XML escaping turns one
 * byte into at most five ("&amp;", "&lt;"), and the stanza or SIP request
 * around it (addresses, subject, thread, headers) into at most 64 KiB more. */
#define XS_WIRE_MAX(body) (5u * (body) + (64u << 10))

/* One serialized stanza or SIP request of the largest allowed body. */
#define XS_MESSAGE_WIRE_MAX XS_WIRE_MAX(XS_MAX_BODY_CEILING)

#endif
