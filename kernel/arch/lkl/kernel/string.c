// SPDX-License-Identifier: GPL-2.0-only
/*
 * Bulk memory operations. The generic lib/string.c versions copy a byte at
 * a time; TCP and block I/O spend most of their time here (docs/kernel.md:
 * 90 % of the CPU of a TCP stream, and 4x the throughput with rep movsb).
 */
#include <linux/types.h>
#include <linux/export.h>
#include <linux/string.h>

#if defined(__x86_64__)

void *memcpy(void *dest, const void *src, size_t n)
{
	void *d = dest;

	asm volatile("rep movsb"
		     : "+D"(d), "+S"(src), "+c"(n)
		     :
		     : "memory");
	return dest;
}

void *memset(void *s, int c, size_t n)
{
	void *d = s;

	asm volatile("rep stosb"
		     : "+D"(d), "+c"(n)
		     : "a"(c)
		     : "memory");
	return s;
}

#else

void *memcpy(void *dest, const void *src, size_t n)
{
	unsigned long *dw = dest;
	const unsigned long *sw = src;
	char *d;
	const char *s;

	if ((((unsigned long)dest | (unsigned long)src) & (sizeof(long) - 1)) == 0) {
		for (; n >= sizeof(long); n -= sizeof(long))
			*dw++ = *sw++;
	}
	d = (char *)dw;
	s = (const char *)sw;
	while (n--)
		*d++ = *s++;
	return dest;
}

void *memset(void *s, int c, size_t n)
{
	char *d = s;

	while (n--)
		*d++ = c;
	return s;
}

#endif

void *memmove(void *dest, const void *src, size_t n)
{
	char *d = dest;
	const char *s = src;

	if (d <= s || d >= s + n)
		return memcpy(dest, src, n);

	/* Overlapping with dest above src: copy from the end, words first. */
	d += n;
	s += n;
	while (n && ((unsigned long)d & (sizeof(long) - 1))) {
		*--d = *--s;
		n--;
	}
	if (((unsigned long)s & (sizeof(long) - 1)) == 0) {
		while (n >= sizeof(long)) {
			d -= sizeof(long);
			s -= sizeof(long);
			*(unsigned long *)d = *(const unsigned long *)s;
			n -= sizeof(long);
		}
	}
	while (n--)
		*--d = *--s;
	return dest;
}

EXPORT_SYMBOL(memcpy);
EXPORT_SYMBOL(memset);
EXPORT_SYMBOL(memmove);
