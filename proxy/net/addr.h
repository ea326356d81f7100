/* Socket addresses as text and back, the one place that knows IPv6 needs
 * brackets when a port follows ("[::1]:5060", RFC 3986 §3.2.2). */
#ifndef XS_NET_ADDR_H
#define XS_NET_ADDR_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

/* Longest "[ipv6]:port" plus the NUL. */
#define XS_NET_ADDR_STRLEN 56

/* Writes the bare IP of an AF_INET or AF_INET6 address into ip (n bytes;
 * INET6_ADDRSTRLEN is enough) and returns its port; "?" and -1 for any
 * other family. */
int xs_net_addr_ip(const struct sockaddr *sa, char *ip, size_t n);

/* Writes "ip:port", or "[ip]:port" for IPv6, into out (n bytes;
 * XS_NET_ADDR_STRLEN is enough); "?" for another family. Returns out. */
const char *xs_net_addr_format(const struct sockaddr *sa, char *out, size_t n);

/* Fills *ss from an IP literal (IPv6 with or without brackets) and a port.
 * XS_EINVAL when host is not an IP literal; ss is zeroed then. */
int xs_net_addr_parse(const char *host, int port, struct sockaddr_storage *ss);

/* Bytes of the sockaddr in ss for its family (what bind/connect take). */
size_t xs_net_addr_len(const struct sockaddr *sa);

/* 1 when both hold the same IP (ports ignored); an IPv4-mapped IPv6
 * address equals its IPv4 form, so one peer cannot count twice. */
int xs_net_addr_same_ip(const struct sockaddr *a, const struct sockaddr *b);

#endif
