/*
 * test_common.c -- common/: the one UTF-8 decoder, colon hex, the
 * buffer's sticky error, and JSON documents that stay
 * valid whatever bytes they are given.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/fdlimit.h"
#include "common/hex.h"
#include "common/json.h"
#include "common/utf8.h"

static void test_utf8_decode(void **state)
{
	unsigned long cp = 0;

	(void)state;
	assert_int_equal(utf8_decode((const unsigned char *)"A", 1, &cp), 1);
	assert_int_equal(cp, 'A');
	assert_int_equal(utf8_decode((const unsigned char *)"\xc3\xa9", 2, &cp), 2);
	assert_int_equal(cp, 0xe9);
	assert_int_equal(utf8_decode((const unsigned char *)"\xf0\x9f\x94\x91", 4, &cp), 4);
	assert_int_equal(cp, 0x1f511);
	assert_int_equal(utf8_decode((const unsigned char *)"\xc3\xa9", 1, &cp), 0);        /* cut short by n */
	assert_int_equal(utf8_decode((const unsigned char *)"\xc0\xaf", 2, &cp), 0);        /* overlong */
	assert_int_equal(utf8_decode((const unsigned char *)"\xed\xa0\x80", 3, &cp), 0);    /* surrogate */
	assert_int_equal(utf8_decode((const unsigned char *)"\xf4\x90\x80\x80", 4, &cp), 0); /* past U+10FFFF */
	assert_int_equal(utf8_decode((const unsigned char *)"\x80", 1, &cp), 0);
	assert_int_equal(utf8_decode((const unsigned char *)"", 0, &cp), 0);
	assert_int_equal(utf8_seq_len((const unsigned char *)"\xe2\x82"), 0);  /* the NUL ends it */
	assert_int_equal(utf8_seq_len((const unsigned char *)"\xe2\x82\xac"), 3);
}

static void test_hex_colon(void **state)
{
	const unsigned char b[] = { 0xab, 0x01, 0xff };
	char out[16], small[6];

	(void)state;
	hex_colon(out, sizeof(out), b, 3);
	assert_string_equal(out, "AB:01:FF");
	hex_colon(small, sizeof(small), b, 3);   /* cut at a whole pair */
	assert_string_equal(small, "AB:01");
	hex_colon(out, sizeof(out), b, 0);
	assert_string_equal(out, "");
}

/* A failed append is remembered, so a document is checked once at the end. */
static void test_buf_sticky_error(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	b.max = 8;
	assert_int_equal(buf_puts(&b, "1234"), 0);
	assert_int_equal(b.err, 0);
	assert_int_equal(buf_puts(&b, "56789"), ROTOR_ETOOBIG);
	assert_int_equal(buf_puts(&b, "5"), 0);            /* later appends may fit ... */
	assert_int_equal(b.err, ROTOR_ETOOBIG);            /* ... but the document is marked broken */
	buf_release(&b);
	assert_int_equal(b.err, 0);
}

/* Whatever bytes a host or certificate gives, the document stays valid JSON and says the same. */
static void test_json_text_any_bytes(void **state)
{
	static const char *const inputs[] = { "plain", "quote \" backslash \\ nl \n tab \t esc \x1b",
					      "caf\xc3\xa9", "bad \xff byte", "cut \xe2\x82", "over \xc0\xaf long", "" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct buf out = BUF_INIT;
		json_error_t err;
		json_t *doc, *back;

		doc = json_pack("{s:o, s:o}", "text", json_text(inputs[i]), "none", json_text(NULL));
		assert_int_equal(json_emit(&out, doc), 0);
		assert_true(out.len > 0 && out.ptr[out.len - 1] == '\n');
		back = json_loads(buf_cstr(&out), 0, &err);
		if (!back)
			fail_msg("input %zu gave invalid JSON: %s (%s)", i, buf_cstr(&out), err.text);
		assert_true(json_is_null(json_object_get(back, "none")));
		if (i == 0 || i == 1 || i == 2 || i == 6)
			assert_string_equal(json_string_value(json_object_get(back, "text")), inputs[i]);
		else
			assert_non_null(strstr(json_string_value(json_object_get(back, "text")), "\xef\xbf\xbd"));
		json_decref(back);
		buf_release(&out);
	}
	assert_int_equal(json_emit(&(struct buf)BUF_INIT, NULL), ROTOR_ENOMEM);
}

/* Every error message is one line, whatever it quotes (remote stderr). */
static void test_err_one_line(void **state)
{
	struct err e = ERR_INIT;
	char s[] = "a\r\nb\tc\n\n";

	(void)state;
	assert_int_equal(err_set(&e, ROTOR_ERROR, "reload failed: %s", "line one\nline two\n"), ROTOR_ERROR);
	assert_string_equal(e.msg, "reload failed: line one line two");
	assert_int_equal(err_prefix(&e, "host%d", 2), ROTOR_ERROR);
	assert_string_equal(e.msg, "host2: reload failed: line one line two");
	assert_string_equal(err_one_line(s), "a  b c");
}

/* The soft limit on open files goes up to the hard one (a socket per host needs it). */
static void test_fdlimit(void **state)
{
	struct rlimit rl, low;
	unsigned long long hard;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	hard = rl.rlim_max == RLIM_INFINITY ? ULLONG_MAX : (unsigned long long)rl.rlim_max;
	if (hard < 128)
		skip();
	low = rl;
	low.rlim_cur = 100;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(fd_limit(), 100);
	assert_int_equal(fd_limit_raise(), hard);
	assert_int_equal(fd_limit(), hard);
	/* Already at the hard limit: nothing changes. */
	assert_int_equal(fd_limit_raise(), hard);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static void test_clock(void **state)
{
	int64_t a, b;

	(void)state;
	a = clock_mono_ms();
	clock_sleep_ms(20);
	b = clock_mono_ms();
	assert_true(b >= a + 20);
	clock_sleep_ms(0);
	clock_sleep_ms(-5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_decode),     cmocka_unit_test(test_hex_colon),
		cmocka_unit_test(test_buf_sticky_error),
		cmocka_unit_test(test_json_text_any_bytes), cmocka_unit_test(test_clock),
		cmocka_unit_test(test_err_one_line),
		cmocka_unit_test(test_fdlimit),
	};

	return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
