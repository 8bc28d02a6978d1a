/*
 * err.h -- one error value passed down every call that can fail.
 *
 * Ownership: the caller owns the struct err (usually on its stack) and
 * passes a pointer to it.  A callee that fails fills it once with
 * err_set() and returns the same negative code; callers up the stack
 * either return that code unchanged or add context in front with
 * err_prefix().  A callee never overwrites a message set deeper down.
 *
 * Codes: 0 is success; every failure is negative.  Specific codes exist
 * only for failures a caller is expected to handle differently.
 */
#ifndef ROTOR_ERR_H
#define ROTOR_ERR_H

#include <stddef.h>

enum rotor_code {
	ROTOR_OK = 0,
	ROTOR_ERROR = -1,     /* anything else: I/O, library failure, bad state */
	ROTOR_ENOTFOUND = -2, /* a file, ref, object or name does not exist */
	ROTOR_EEXISTS = -3,   /* refusing to overwrite something that exists */
	ROTOR_EINVALID = -4,  /* input failed validation (details in the message) */
	ROTOR_ETOOBIG = -5,   /* input over a size or nesting cap */
	ROTOR_ESECRET = -6,   /* missing, unreadable or wrong secret key */
	ROTOR_ESTATE = -7,    /* repository or env in a state that forbids the action */
	ROTOR_ENOMEM = -8     /* allocation failure */
};

#define ERR_MSG_MAX 512

struct err {
	int code;
	char msg[ERR_MSG_MAX];
};

#define ERR_INIT { 0, { 0 } }

#if defined(__GNUC__)
#define ROTOR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ROTOR_PRINTF(a, b)
#endif

/*
 * Record code and message in e (which may be NULL); returns code.  The
 * message is one line: line breaks and other control characters (say,
 * from a remote command's stderr) become spaces, trailing ones go.
 */
int err_set(struct err *e, int code, const char *fmt, ...) ROTOR_PRINTF(3, 4);

/* Put "context: " in front of the message already in e (one line, as above); returns e->code. */
int err_prefix(struct err *e, const char *fmt, ...) ROTOR_PRINTF(2, 3);

void err_clear(struct err *e);

/* Make s one line in place, as err_set() does; returns s. */
char *err_one_line(char *s);

/* Out-of-memory shortcut: err_set(e, ROTOR_ENOMEM, "out of memory"). */
int err_nomem(struct err *e);

#endif
