/* Dialback keys as XEP-0185 recommends them: derived from one shared secret,
 * so any gateway instance holding the secret can verify a key another
 * instance generated, and nothing per stream has to be remembered. */
#ifndef XS_XMPP_DIALBACK_KEY_H
#define XS_XMPP_DIALBACK_KEY_H

/* out = lowercase hex of HMAC-SHA256(key = hex(SHA256(secret)),
 * text = receiving + " " + originating + " " + stream_id), NUL-terminated.
 * All strings are borrowed. Returns 0, or XS_EINVAL when an input is NULL
 * or empty (a key over an empty stream id would verify any stream). */
int xs_dialback_key(const char *secret, const char *receiving, const char *originating,
                    const char *stream_id, char out[65]);

/* 1 when the two strings are equal, else 0. The time taken depends only on
 * the length of b (the key the peer sent), never on where a and b differ. */
int xs_dialback_key_equal(const char *a, const char *b);

/* 64 lowercase hex characters (256 bits) from the kernel's random source,
 * NUL-terminated: the secret when the operator configured none. Aborts if
 * the kernel cannot provide randomness, since every later key would be
 * guessable. */
void xs_dialback_random_secret(char out[65]);

#endif
