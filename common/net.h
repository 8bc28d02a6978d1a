/*
 * net.h -- one TCP connect with a timeout.
 *
 * net_connect() resolves host (an IPv4 or IPv6 literal, or a name) and
 * tries its addresses in order until one accepts, each with a
 * non-blocking connect() and poll(); timeout_ms bounds the whole call
 * after name resolution (resolution itself is getaddrinfo's own time).
 * It returns the connected socket, still non-blocking, close-on-exec,
 * with TCP_NODELAY set; the caller close()s it.  On failure it returns
 * a negative ROTOR_* code (ROTOR_ENOMEM when resolution ran out of
 * memory, else ROTOR_ERROR) with a message naming the endpoint:
 *   "cannot resolve HOST: ..."
 *   "connect to ADDRESS:PORT: Connection refused"   ([v6]:PORT for IPv6)
 *   "connect to ADDRESS:PORT timed out after N ms"
 * Callers put their own context ("pg1 (10.0.0.5): ") in front with
 * err_prefix().  Thread-safe.
 */
#ifndef ROTOR_NET_H
#define ROTOR_NET_H

#include "common/err.h"

int net_connect(const char *host, int port, int timeout_ms, struct err *e);

#endif
