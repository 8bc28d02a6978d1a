/* net.c -- TCP connect with a timeout (see net.h). */
#include "common/net.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"

/* "ADDRESS:PORT", with an IPv6 literal in brackets. */
static const char *endpoint(char *out, size_t n, const char *host, int port)
{
	snprintf(out, n, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	return out;
}

static const char *errno_text(int err, char *tmp, size_t len)
{
	if (strerror_r(err, tmp, len) != 0)
		snprintf(tmp, len, "error %d", err);
	return tmp;
}

/* Wait for fd to finish connecting: 0 connected, -1 the deadline passed, else the errno. */
static int wait_connected(int fd, int64_t end)
{
	for (;;) {
		struct pollfd p = { fd, POLLOUT, 0 };
		int64_t left = end - clock_mono_ms();
		int soerr = 0, r;
		socklen_t sl = sizeof(soerr);

		if (left <= 0)
			return -1;
		r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno;
		if (r == 0)
			continue;   /* the loop sees the deadline */
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
			soerr = errno;
		return soerr;
	}
}

int net_connect(const char *host, int port, int timeout_ms, struct err *e)
{
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[16], ep[300], tmp[128];
	int64_t end;
	int r, fd = -1, saved = 0, timed = 0;

	if (!host || !*host || port <= 0 || port > 65535)
		return err_set(e, ROTOR_EINVALID, "connect: bad address or port %d", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	r = getaddrinfo(host, portstr, &hints, &res);
	if (r != 0)
		return err_set(e, r == EAI_MEMORY ? ROTOR_ENOMEM : ROTOR_ERROR, "cannot resolve %s: %s",
			       host, gai_strerror(r));
	end = clock_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			saved = 0;
		else if (errno == EINPROGRESS)
			saved = wait_connected(fd, end);
		else
			saved = errno;
		if (saved == 0)
			break;
		close(fd);
		fd = -1;
		if (saved < 0) {
			timed = 1;
			break;
		}
	}
	freeaddrinfo(res);
	if (fd < 0) {
		endpoint(ep, sizeof(ep), host, port);
		if (timed)
			return err_set(e, ROTOR_ERROR, "connect to %s timed out after %d ms", ep, timeout_ms);
		return err_set(e, ROTOR_ERROR, "connect to %s: %s", ep,
			       errno_text(saved ? saved : ECONNREFUSED, tmp, sizeof(tmp)));
	}
	r = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &r, sizeof(r));
	return fd;
}
