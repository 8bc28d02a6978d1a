/*
 * clock.h -- the one clock and the one sleep.
 *
 * clock_mono_ms() reads CLOCK_MONOTONIC in milliseconds: for deadlines
 * and durations, never for dates (it does not move with the wall clock
 * and has an arbitrary origin).  clock_sleep_ms() sleeps at least ms
 * milliseconds, resuming after a signal interrupts it; ms <= 0 returns
 * at once.  Both are thread-safe and cannot fail.
 */
#ifndef ROTOR_CLOCK_H
#define ROTOR_CLOCK_H

#include <stdint.h>

int64_t clock_mono_ms(void);
void clock_sleep_ms(int64_t ms);

#endif
