// SPDX-License-Identifier: GPL-2.0-only
/*
 * Devices added after boot: the host registers a virtio-mmio device (its
 * registers at a host address, an IRQ from lkl_get_free_irq) and calls
 * this, lkl's one system call of its own. Devices known before boot come
 * through the command line instead (virtio_mmio.device=).
 */
#include <linux/syscalls.h>
#include <linux/platform_device.h>
#include <linux/ioport.h>
#include <linux/err.h>
#include <asm/lkl.h>

SYSCALL_DEFINE3(virtio_mmio_device_add, unsigned long, base, unsigned long, size,
		unsigned int, irq)
{
	struct resource res[] = {
		DEFINE_RES_MEM(base, size),
		DEFINE_RES_IRQ(irq),
	};
	struct platform_device *pdev;

	if (!size || irq == 0 || irq >= NR_IRQS)
		return -EINVAL;
	pdev = platform_device_register_simple("virtio-mmio", PLATFORM_DEVID_AUTO,
					       res, ARRAY_SIZE(res));
	if (IS_ERR(pdev))
		return PTR_ERR(pdev);
	return pdev->id;
}
