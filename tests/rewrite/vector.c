/* The program's vector state across routed calls (docs/every-syscall.md,
 * "Rewritten sites"): the `syscall` instruction keeps every vector
 * register, so a routed call must too, through the trap and through a
 * rewritten site. Each part fills the registers the CPU has (xmm0-15, or
 * ymm0-15, or zmm0-31 and k0-7) and MXCSR with a pattern, makes a routed
 * call from a `mov $nr,%eax; syscall` site of its own, and compares the
 * registers after it:
 *   getsockname  on a socket (the kernel's: the hook, the kernel's code)
 *   openat       of /dev/null (the hook, path handling, the host)
 *   zero         the same getsockname with the upper state in its initial
 *                state (XRSTOR of an empty header): zeros after the call
 *   x87          last: getsockname with a value on the x87 stack (its
 *                state in use: the trampoline's XSAVE way), then again
 * Prints "LEVEL PART calls N fast F trap T failures X" per part. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "counters.h"

/* zmm0-31 at 64-byte strides, then k0-7, then MXCSR. */
struct regs {
	uint8_t v[32][64];
	uint64_t k[8];
	uint32_t mxcsr, pad;
	double x87;
} __attribute__((aligned(64)));

#define LOAD_X(i) "movdqu " #i "*64(%[in]), %%xmm" #i "\n\t"
#define STORE_X(i) "movdqu %%xmm" #i ", " #i "*64(%[out])\n\t"
#define LOAD_Y(i) "vmovdqu " #i "*64(%[in]), %%ymm" #i "\n\t"
#define STORE_Y(i) "vmovdqu %%ymm" #i ", " #i "*64(%[out])\n\t"
#define LOAD_Z(i) "vmovdqu64 " #i "*64(%[in]), %%zmm" #i "\n\t"
#define STORE_Z(i) "vmovdqu64 %%zmm" #i ", " #i "*64(%[out])\n\t"
#define LOAD_K(i) "kmovq 2048+" #i "*8(%[in]), %%k" #i "\n\t"
#define STORE_K(i) "kmovq %%k" #i ", 2048+" #i "*8(%[out])\n\t"
#define R16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define R16HI(M) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31)
#define R8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define CLOB16 "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", \
	"xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"
#define CLOB32 CLOB16, "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", \
	"xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "k0", "k1", "k2", \
	"k3", "k4", "k5", "k6", "k7"

/* One site per (level, number). `fresh` > 0: the upper components put in
 * their initial state first (XRSTOR of an empty header, mask in eax). */
#define SITES(NAME, NR)                                                                     \
	__attribute__((noinline)) static long sse_##NAME(long a, long b, long c,             \
							 struct regs *in, struct regs *out)  \
	{                                                                                    \
		register long r10 __asm__("r10") = 0;                                        \
		long r;                                                                      \
		__asm__ volatile("ldmxcsr 2112(%[in])\n\t" R16(LOAD_X) "movl $" #NR          \
				 ", %%eax\n\tsyscall\n\t" R16(STORE_X) "stmxcsr 2112(%[out])"        \
				 : "=a"(r), "+r"(r10)                                        \
				 : "D"(a), "S"(b), "d"(c), [in] "r"(in), [out] "r"(out)       \
				 : "rcx", "r11", "memory", CLOB16);                           \
		return r;                                                                    \
	}                                                                                    \
	__attribute__((noinline, target("avx2"))) static long avx_##NAME(                    \
		long a, long b, long c, struct regs *in, struct regs *out)                   \
	{                                                                                    \
		register long r10 __asm__("r10") = 0;                                        \
		long r;                                                                      \
		__asm__ volatile("ldmxcsr 2112(%[in])\n\t" R16(LOAD_Y) "movl $" #NR          \
				 ", %%eax\n\tsyscall\n\t" R16(STORE_Y) "stmxcsr 2112(%[out])"        \
				 : "=a"(r), "+r"(r10)                                        \
				 : "D"(a), "S"(b), "d"(c), [in] "r"(in), [out] "r"(out)       \
				 : "rcx", "r11", "memory", CLOB16);                           \
		return r;                                                                    \
	}                                                                                    \
	__attribute__((noinline, target("avx512f,avx512bw"))) static long zmm_##NAME(        \
		long a, long b, long c, struct regs *in, struct regs *out)                   \
	{                                                                                    \
		register long r10 __asm__("r10") = 0;                                        \
		long r;                                                                      \
		__asm__ volatile("ldmxcsr 2112(%[in])\n\t" R16(LOAD_Z) R16HI(LOAD_Z)         \
				 R8(LOAD_K) "movl $" #NR ", %%eax\n\tsyscall\n\t"            \
				 R16(STORE_Z) R16HI(STORE_Z) R8(STORE_K)                     \
				 "stmxcsr 2112(%[out])"                                      \
				 : "=a"(r), "+r"(r10)                                        \
				 : "D"(a), "S"(b), "d"(c), [in] "r"(in), [out] "r"(out)       \
				 : "rcx", "r11", "memory", CLOB32);                           \
		return r;                                                                    \
	}

SITES(getsockname, 51)
SITES(openat, 257)

/* getsockname with a value on the x87 stack (its state in use: the
 * trampoline's XSAVE way), and xmm0-15 and MXCSR as at the SSE level. */
__attribute__((noinline)) static long x87_getsockname(long a, long b, long c, struct regs *in,
						      struct regs *out)
{
	register long r10 __asm__("r10") = 0;
	long r;
	__asm__ volatile("fldl 2120(%[in])\n\t"
			 "ldmxcsr 2112(%[in])\n\t" R16(LOAD_X) "movl $51, %%eax\n\tsyscall\n\t" R16(STORE_X)
			 "stmxcsr 2112(%[out])\n\t"
			 "fstpl 2120(%[out])"
			 : "=a"(r), "+r"(r10)
			 : "D"(a), "S"(b), "d"(c), [in] "r"(in), [out] "r"(out)
			 : "rcx", "r11", "memory", CLOB16);
	return r;
}

/* getsockname with the upper components (AVX, AVX-512) in their initial
 * state: XRSTOR of an all-zero header with those bits in the mask. */
static uint8_t xarea[8192] __attribute__((aligned(64)));

__attribute__((noinline, target("avx512f,avx512bw,xsave"))) static long
zero_getsockname(long a, long b, long c, struct regs *in, struct regs *out, unsigned mask)
{
	register long r10 __asm__("r10") = 0;
	long r;
	__asm__ volatile("xorl %%edx, %%edx\n\t"
			 "movl %[mask], %%eax\n\t"
			 "xrstor64 (%[x])\n\t"
			 "movq %[c], %%rdx\n\t"
			 "ldmxcsr 2112(%[in])\n\t" R16(LOAD_X) "movl $51, %%eax\n\tsyscall\n\t"
			 "testl $0xe0, %[mask]\n\t"
			 "jz 1f\n\t" R16(STORE_Z) R16HI(STORE_Z) R8(STORE_K) "jmp 2f\n"
			 "1:\n\t" R16(STORE_Y) "2:\n\t"
			 "stmxcsr 2112(%[out])"
			 : "=&a"(r), "+r"(r10)
			 : "D"(a), "S"(b), [c] "r"(c), [in] "r"(in), [out] "r"(out), [x] "r"(xarea),
			   [mask] "r"(mask)
			 : "rcx", "rdx", "r11", "memory", CLOB32);
	return r;
}

enum level { SSE, AVX, ZMM };
static const char *names[] = { "sse", "avx", "zmm" };

static void fill(struct regs *in, unsigned seed)
{
	for (int i = 0; i < 32; i++)
		for (int j = 0; j < 64; j++)
			in->v[i][j] = (uint8_t)(seed * 131 + i * 17 + j * 7 + 1);
	for (int i = 0; i < 8; i++)
		in->k[i] = 0x0123456789abcdefULL * (seed + i + 1);
	/* Round toward zero, every exception masked, flush-to-zero. */
	in->mxcsr = 0x1f80 | 0x6000 | 0x8000;
	in->x87 = 1.0 / 3.0 + seed;
}

/* Bytes of each register the level loads (xmm: 16, ymm: 32, zmm: 64). */
static int same(enum level l, const struct regs *in, const struct regs *out)
{
	int n = l == ZMM ? 32 : 16, w = l == SSE ? 16 : l == AVX ? 32 : 64;
	for (int i = 0; i < n; i++)
		if (memcmp(in->v[i], out->v[i], w))
			return 0;
	if (l == ZMM && memcmp(in->k, out->k, sizeof(in->k)))
		return 0;
	if (out->x87 != 0 && out->x87 != in->x87)
		return 0;
	return in->mxcsr == out->mxcsr;
}

typedef long (*site_fn)(long, long, long, struct regs *, struct regs *);

static void part(enum level l, const char *what, site_fn f, long n, int sock)
{
	static struct regs in, out;
	unsigned long long a[5], b[5];
	int failures = 0;
	char sa[128];
	socklen_t len;
	counters(a);
	for (long i = 0; i < n; i++) {
		fill(&in, (unsigned)i);
		memset(&out, 0, sizeof(out));
		long r;
		if (f == sse_openat || f == avx_openat || f == zmm_openat) {
			r = f(AT_FDCWD, (long)"/dev/null", O_RDONLY | O_CLOEXEC, &in, &out);
			if (r >= 0)
				close((int)r);
		} else {
			len = sizeof(sa);
			r = f(sock, (long)sa, (long)&len, &in, &out);
		}
		if (r < 0 || !same(l, &in, &out)) {
			if (failures < 3)
				fprintf(stderr, "%s %s: call %ld: result %ld, registers %s\n", names[l], what, i,
					r, same(l, &in, &out) ? "kept" : "CHANGED");
			failures++;
		}
	}
	counters(b);
	printf("%s %s calls %ld fast %llu trap %llu failures %d\n", names[l], what, n, b[0] - a[0],
	       b[1] - a[1], failures);
}

/* The upper state in its initial state before the call: all zero after. */
static void zero_part(enum level l, long n, int sock)
{
	static struct regs in, out;
	unsigned long long a[5], b[5];
	int failures = 0;
	char sa[128];
	socklen_t len;
	unsigned mask = l == ZMM ? 0xe4 : 0x4;
	counters(a);
	for (long i = 0; i < n; i++) {
		fill(&in, (unsigned)i);
		memset(&out, 0xee, sizeof(out));
		len = sizeof(sa);
		long r = zero_getsockname(sock, (long)sa, (long)&len, &in, &out, mask);
		int ok = r >= 0 && out.mxcsr == in.mxcsr;
		for (int k = 0; k < 16 && ok; k++) {
			static const uint8_t z[64];
			ok = !memcmp(out.v[k], in.v[k], 16) &&
			     !memcmp(out.v[k] + 16, z, l == ZMM ? 48 : 16);
		}
		for (int k = 16; k < 32 && ok && l == ZMM; k++) {
			static const uint8_t z[64];
			ok = !memcmp(out.v[k], z, 64);
		}
		for (int k = 0; k < 8 && ok && l == ZMM; k++)
			ok = out.k[k] == 0;
		if (!ok) {
			if (failures < 3)
				fprintf(stderr, "%s zero: call %ld: result %ld, not as before\n", names[l], i, r);
			failures++;
		}
	}
	counters(b);
	printf("%s zero calls %ld fast %llu trap %llu failures %d\n", names[l], n, b[0] - a[0],
	       b[1] - a[1], failures);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 2000;
	counters_find();
	int sock = socket(AF_INET, SOCK_STREAM, 0);
	if (sock < 0) {
		perror("socket");
		return 1;
	}
	__builtin_cpu_init();
	enum level top = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") ?
				 ZMM :
			 __builtin_cpu_supports("avx2") ? AVX :
							    SSE;
	printf("level %s\n", names[top]);
	site_fn gs[] = { sse_getsockname, avx_getsockname, zmm_getsockname };
	site_fn op[] = { sse_openat, avx_openat, zmm_openat };
	for (enum level l = SSE; l <= top; l++) {
		part(l, "getsockname", gs[l], n, sock);
		part(l, "openat", op[l], n, sock);
	}
	if (top >= AVX)
		zero_part(top, n, sock);
	/* Last: the x87 state in use (the XSAVE way from then on: it stays
	 * in use), after calls of the other way at the same sites. */
	part(SSE, "x87", x87_getsockname, n, sock);
	part(top, "getsockname-again", gs[top], n, sock);
	return 0;
}
