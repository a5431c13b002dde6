// SPDX-License-Identifier: GPL-2.0-only
/*
 * Interrupts. A host thread raises an IRQ with lkl_trigger_irq: the line
 * is marked pending in a two-level bitmap (host atomics, so any thread may
 * set it) and delivered by whichever thread owns the CPU, as soon as the
 * virtual interrupt flag allows.
 */
#include <linux/interrupt.h>
#include <linux/irq.h>
#include <linux/hardirq.h>
#include <linux/irqflags.h>
#include <linux/bitops.h>
#include <linux/errno.h>
#include <asm/irq_regs.h>
#include <asm/lkl.h>

#define IRQ_WORDS	(NR_IRQS / BITS_PER_LONG)

static unsigned long irq_pending[IRQ_WORDS];
static unsigned long irq_pending_words;
static unsigned long irq_used[IRQ_WORDS];
static unsigned long irq_flag = ARCH_IRQ_DISABLED;
static int irqs_running;
static struct pt_regs dummy_regs;

static_assert(IRQ_WORDS <= BITS_PER_LONG);

int lkl_irqs_pending(void)
{
	return __atomic_load_n(&irq_pending_words, __ATOMIC_ACQUIRE) != 0;
}

static void run_irq(int irq)
{
	unsigned long flags;
	struct pt_regs *old_regs = set_irq_regs(&dummy_regs);

	local_irq_save(flags);
	irq_enter();
	generic_handle_irq(irq);
	irq_exit();
	local_irq_restore(flags);
	set_irq_regs(old_regs);
}

/* Deliver every pending IRQ. Called by the CPU owner. */
void lkl_run_irqs(void)
{
	unsigned long words, bits;
	int w, b;

	if (irqs_running)
		return;
	irqs_running = 1;
	while ((words = __atomic_exchange_n(&irq_pending_words, 0, __ATOMIC_ACQ_REL))) {
		for_each_set_bit(w, &words, IRQ_WORDS) {
			bits = __atomic_exchange_n(&irq_pending[w], 0, __ATOMIC_ACQ_REL);
			for_each_set_bit(b, &bits, BITS_PER_LONG)
				run_irq(w * BITS_PER_LONG + b);
		}
	}
	irqs_running = 0;
}

unsigned long arch_local_save_flags(void)
{
	return irq_flag;
}

void arch_local_irq_restore(unsigned long flags)
{
	if (flags == ARCH_IRQ_ENABLED && irq_flag == ARCH_IRQ_DISABLED &&
	    !in_interrupt() && lkl_irqs_pending())
		lkl_run_irqs();
	irq_flag = flags;
}

int lkl_trigger_irq(int irq)
{
	int w = irq / BITS_PER_LONG;

	if (irq <= 0 || irq >= NR_IRQS)
		return -EINVAL;

	__atomic_fetch_or(&irq_pending[w], BIT(irq % BITS_PER_LONG), __ATOMIC_RELEASE);
	__atomic_fetch_or(&irq_pending_words, BIT(w), __ATOMIC_RELEASE);

	/* Raised from kernel context (a device's register write): delivered soon. */
	if (lkl_cpu_owned_by_self())
		return 0;
	/* Whoever owns the CPU rechecks before releasing it. */
	if (!lkl_cpu_try_get())
		return 0;
	lkl_cpu_park_foreign();
	return 0;
}

int lkl_get_free_irq(const char *user)
{
	int irq;

	for (irq = 1; irq < NR_IRQS; irq++) {
		unsigned long *word = &irq_used[irq / BITS_PER_LONG];
		unsigned long bit = BIT(irq % BITS_PER_LONG);

		if (!(__atomic_fetch_or(word, bit, __ATOMIC_ACQ_REL) & bit))
			return irq;
	}
	return -EBUSY;
}

void lkl_put_irq(int irq, const char *user)
{
	if (irq <= 0 || irq >= NR_IRQS)
		return;
	__atomic_fetch_and(&irq_used[irq / BITS_PER_LONG],
			   ~BIT(irq % BITS_PER_LONG), __ATOMIC_ACQ_REL);
}

void __init init_IRQ(void)
{
	int i;

	for (i = 1; i < NR_IRQS; i++)
		irq_set_chip_and_handler(i, &dummy_irq_chip, handle_simple_irq);
}
