// SPDX-License-Identifier: GPL-2.0-only
/*
 * Time: a 1 GHz clocksource reading the host's monotonic clock, and a
 * one-shot clockevent backed by one host timer whose expiry raises the
 * timer IRQ from the host's timer thread.
 */
#include <linux/clocksource.h>
#include <linux/clockchips.h>
#include <linux/interrupt.h>
#include <linux/sched_clock.h>
#include <linux/sched/clock.h>
#include <linux/timekeeping.h>
#include <linux/delay.h>
#include <linux/cpumask.h>
#include <asm/lkl.h>

static struct lkl_timer *timer;
static int timer_irq;
static u64 boot_time;

unsigned long long sched_clock(void)
{
	if (!boot_time)
		return 0;
	return lkl_ops->time() - boot_time;
}

static u64 clock_read(struct clocksource *cs)
{
	return lkl_ops->time();
}

static struct clocksource clocksource = {
	.name	= "lkl",
	.rating	= 499,
	.read	= clock_read,
	.flags	= CLOCK_SOURCE_IS_CONTINUOUS,
	.mask	= CLOCKSOURCE_MASK(64),
};

static int clockevent_next_event(unsigned long ns, struct clock_event_device *evt)
{
	return lkl_ops->timer_set_oneshot(timer, ns);
}

static int clockevent_shutdown(struct clock_event_device *evt)
{
	/* ~0 disarms the host timer. */
	return lkl_ops->timer_set_oneshot(timer, ~0ULL);
}

static struct clock_event_device clockevent = {
	.name			= "lkl",
	.features		= CLOCK_EVT_FEAT_ONESHOT,
	.set_next_event		= clockevent_next_event,
	.set_state_shutdown	= clockevent_shutdown,
	.rating			= 100,
};

static irqreturn_t timer_irq_handler(int irq, void *dev)
{
	clockevent.event_handler(&clockevent);
	return IRQ_HANDLED;
}

static void timer_expired(void *arg)
{
	lkl_trigger_irq(timer_irq);
}

void __init time_init(void)
{
	int ret;

	timer_irq = lkl_get_free_irq("timer");
	ret = request_irq(timer_irq, timer_irq_handler, IRQF_TIMER, "timer", NULL);
	if (ret)
		panic("lkl: timer IRQ: %d", ret);

	timer = lkl_ops->timer_alloc(timer_expired, NULL);
	if (!timer)
		panic("lkl: no host timer");

	boot_time = lkl_ops->time();
	ret = clocksource_register_khz(&clocksource, 1000000);
	if (ret)
		panic("lkl: clocksource: %d", ret);

	/*
	 * cpumask_of() is no constant initializer; left unset, registering
	 * warns "cpumask == cpu_all_mask" (docs/kernel.md).
	 */
	clockevent.cpumask = cpumask_of(0);
	clockevents_config_and_register(&clockevent, NSEC_PER_SEC, 1, ULONG_MAX);
}

void lkl_time_shutdown(void)
{
	if (timer)
		lkl_ops->timer_free(timer);
	timer = NULL;
}

void read_persistent_clock64(struct timespec64 *ts)
{
	*ts = ns_to_timespec64(lkl_ops->realtime());
}

void calibrate_delay(void)
{
}

void __ndelay(unsigned long nsecs)
{
	u64 end = lkl_ops->time() + nsecs;

	while (lkl_ops->time() < end)
		;
}

void __udelay(unsigned long usecs)
{
	__ndelay(usecs * NSEC_PER_USEC);
}

void __const_udelay(unsigned long xloops)
{
	__udelay(xloops / 0x10c7);
}
