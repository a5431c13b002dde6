// SPDX-License-Identifier: GPL-2.0-only
/*
 * The kernel's RAM: one page-aligned host region (mem=, default 64 MiB),
 * "physical" addresses counted from LKL_PHYS_BASE (asm/page.h).
 */
#include <linux/init.h>
#include <linux/memblock.h>
#include <linux/mm.h>
#include <linux/pfn.h>
#include <asm/lkl.h>

unsigned long memory_start, memory_end;
void *empty_zero_page;
static unsigned long mem_size = 64 << 20;

static int __init early_mem(char *p)
{
	mem_size = memparse(p, &p);
	return 0;
}
early_param("mem", early_mem);

void __init lkl_bootmem_init(void)
{
	unsigned long max_zone_pfn[MAX_NR_ZONES] = { 0 };

	mem_size = PAGE_ALIGN(mem_size);
	memory_start = (unsigned long)lkl_ops->page_alloc(mem_size);
	if (!memory_start)
		panic("lkl: cannot allocate %lu bytes of RAM", mem_size);
	memory_end = memory_start + mem_size;

	min_low_pfn = ARCH_PFN_OFFSET;
	max_low_pfn = virt_to_pfn((void *)memory_end);
	max_pfn = max_low_pfn;

	memblock_add(__pa(memory_start), mem_size);
	empty_zero_page = memblock_alloc(PAGE_SIZE, PAGE_SIZE);
	if (!empty_zero_page)
		panic("lkl: no zero page");

	max_zone_pfn[ZONE_NORMAL] = max_low_pfn;
	free_area_init(max_zone_pfn);
}

void __init mem_init(void)
{
	max_mapnr = max_low_pfn - ARCH_PFN_OFFSET;
	memblock_free_all();
}

/* __init sections live in the host image, never in RAM: keep them. */
void free_initmem(void)
{
}

void lkl_bootmem_free(void)
{
	lkl_ops->page_free((void *)memory_start, mem_size);
}
