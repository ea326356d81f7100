/* One HTTP/1.1 request head, as the admin listener reads it: bytes from the
 * network are fed in as they come, and http-parser (Debian's
 * libhttp-parser) does the parsing. Only what the admin listener serves is
 * accepted: GET or HEAD, a path, no body. Everything is bounded, so a
 * hostile client costs at most XS_HTTP_HEAD_MAX bytes. No sockets here, so
 * the fuzzer drives it directly. */
#ifndef XS_ADMIN_HTTP_REQUEST_H
#define XS_ADMIN_HTTP_REQUEST_H

#include <stddef.h>

#include <http_parser.h>

#define XS_HTTP_HEAD_MAX 8192 /* request line and headers */
#define XS_HTTP_PATH_MAX 256  /* the admin paths are short; longer is 414 */

enum xs_http_method { XS_HTTP_GET = 1, XS_HTTP_HEAD = 2 };

struct xs_http_request {
    http_parser parser;
    size_t head_bytes; /* fed so far, up to the end of the head */
    int done;          /* the head is complete and acceptable */
    int status;        /* 0, or the HTTP status the request is refused with */
    const char *reason;
    enum xs_http_method method;
    char path[XS_HTTP_PATH_MAX + 1]; /* without the query string */
    size_t path_len;
    int query_seen;
};

void xs_http_request_init(struct xs_http_request *r);

/* Feeds len bytes. Returns 0 while more is needed, 1 once the head is
 * complete and acceptable (r->method and r->path set; bytes after it are
 * ignored: one request per connection), or the 4xx status the request is
 * refused with (r->reason says why): 400 malformed, 405 a method other than
 * GET or HEAD, 413 a body, 414 a path over XS_HTTP_PATH_MAX, 431 a head
 * over XS_HTTP_HEAD_MAX. After a non-zero result, feeding is not allowed. */
int xs_http_request_feed(struct xs_http_request *r, const char *data, size_t len);

#endif
