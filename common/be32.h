/*
 * be32.h -- 32-bit unsigned integers in network byte order (big-endian),
 * as the wire protocols rotor speaks write them: SFTP packets
 * (reconcile/remote) and PostgreSQL's messages (reconcile/tls).
 * Header only; the caller owns the 4 bytes at p.
 */
#ifndef ROTOR_BE32_H
#define ROTOR_BE32_H

#include <stdint.h>

static inline void be32_put(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static inline uint32_t be32_get(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

#endif
