#include "admin/http_request.h"

#include <stdint.h>
#include <string.h>

static int refuse(struct xs_http_request *r, int status, const char *reason)
{
    if (!r->status) {
        r->status = status;
        r->reason = reason;
    }
    return -1; /* stops http-parser */
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct xs_http_request *r = p->data;
    for (size_t i = 0; i < len; i++) {
        if (at[i] == '?' || at[i] == '#')
            r->query_seen = 1;
        if (r->query_seen)
            continue;
        if (r->path_len >= XS_HTTP_PATH_MAX)
            return refuse(r, 414, "path too long");
        r->path[r->path_len++] = at[i];
    }
    r->path[r->path_len] = '\0';
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct xs_http_request *r = p->data;
    if (p->method != HTTP_GET && p->method != HTTP_HEAD)
        return refuse(r, 405, "only GET and HEAD");
    if ((p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != UINT64_MAX))
        return refuse(r, 413, "no request body is accepted");
    if (r->path[0] != '/')
        return refuse(r, 400, "the target must be a path");
    r->method = p->method == HTTP_GET ? XS_HTTP_GET : XS_HTTP_HEAD;
    r->done = 1;
    /* One request per connection: whatever follows is not read. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_headers_complete = on_headers_complete,
};

void xs_http_request_init(struct xs_http_request *r)
{
    memset(r, 0, sizeof *r);
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
}

int xs_http_request_feed(struct xs_http_request *r, const char *data, size_t len)
{
    if (r->status)
        return r->status;
    if (r->done)
        return 1;
    /* Only the head is ever parsed, so every byte fed counts against it;
     * the check comes first so the parser never sees more than the bound. */
    size_t room = XS_HTTP_HEAD_MAX - r->head_bytes;
    size_t n = len < room ? len : room;
    size_t used = http_parser_execute(&r->parser, &settings, data, n);
    r->head_bytes += used;
    if (r->status)
        return r->status;
    if (r->done)
        return 1;
    if (HTTP_PARSER_ERRNO(&r->parser) != HPE_OK) {
        refuse(r, 400, http_errno_description(HTTP_PARSER_ERRNO(&r->parser)));
        return r->status;
    }
    if (len > n || r->head_bytes >= XS_HTTP_HEAD_MAX) {
        refuse(r, 431, "request head too large");
        return r->status;
    }
    return 0;
}
