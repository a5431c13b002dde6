// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host notifiers on kernel files, for waiting on host and kernel
 * descriptors at once without a thread per wait (docs/kernel.md).
 *
 * lkl_notifier_add(fd, events, cb, cookie) registers on the file's wait
 * queues the way poll() does, but keeps the entries: whenever the file is
 * woken with one of `events`, cb(cookie) runs (once per burst), typically
 * writing to a host eventfd that a host poll/epoll waits on. For a kernel
 * epoll file this follows every item it watches, as nested epoll does.
 *
 * The callback runs on whichever thread holds the CPU, but only when that
 * thread gives the CPU up (deferred mode): wake-ups queue the notifier and
 * lkl_notify_flush() runs the callbacks. So cb must not block and must not
 * call into the kernel. A caller waits race-free with: drain its eventfd,
 * harvest kernel events with a zero timeout, then block on the host side;
 * level-triggered items the kernel re-queues do not fire again, so never
 * block without harvesting first.
 *
 * The notifier holds a reference on the file until it is deleted: closing
 * the last descriptor does not release an epoll file while a notifier is on
 * it (epoll sends no POLLFREE of its own).
 */
#include <linux/syscalls.h>
#include <linux/file.h>
#include <linux/poll.h>
#include <linux/wait.h>
#include <linux/idr.h>
#include <linux/slab.h>
#include <linux/list.h>
#include <asm/lkl.h>

#define NOTIFIER_HEADS 2

struct lkl_notifier;

struct notifier_entry {
	wait_queue_entry_t wait;
	wait_queue_head_t *head;
	struct lkl_notifier *notifier;
};

struct lkl_notifier {
	struct file *file;
	poll_table pt;
	struct notifier_entry entries[NOTIFIER_HEADS];
	int heads;
	__poll_t events;
	void (*cb)(void *cookie);
	void *cookie;
	bool queued;
	struct list_head pending;
};

static DEFINE_IDR(notifiers);
static LIST_HEAD(pending_notifiers);

static void notifier_queue(struct lkl_notifier *n)
{
	if (!n->queued) {
		n->queued = true;
		list_add_tail(&n->pending, &pending_notifiers);
	}
}

static int notifier_wake(wait_queue_entry_t *wait, unsigned int mode, int sync, void *key)
{
	struct notifier_entry *e = container_of(wait, struct notifier_entry, wait);
	__poll_t mask = key_to_poll(key);

	if (mask & POLLFREE) {
		/* The queue goes away with its file: stop listening to it. */
		list_del_init(&wait->entry);
		e->head = NULL;
	} else if (mask && !(mask & e->notifier->events)) {
		return 0;
	}
	notifier_queue(e->notifier);
	/* Not exclusive: every other waiter is woken too. */
	return 0;
}

static void notifier_qproc(struct file *file, wait_queue_head_t *head, poll_table *pt)
{
	struct lkl_notifier *n = container_of(pt, struct lkl_notifier, pt);
	struct notifier_entry *e;

	if (n->heads >= NOTIFIER_HEADS) {
		WARN_ONCE(1, "lkl: a file with more than %d wait queues", NOTIFIER_HEADS);
		return;
	}
	e = &n->entries[n->heads++];
	e->head = head;
	e->notifier = n;
	init_waitqueue_func_entry(&e->wait, notifier_wake);
	add_wait_queue(head, &e->wait);
}

static void notifier_free(struct lkl_notifier *n)
{
	int i;

	for (i = 0; i < n->heads; i++)
		if (n->entries[i].head)
			remove_wait_queue(n->entries[i].head, &n->entries[i].wait);
	if (n->queued)
		list_del(&n->pending);
	fput(n->file);
	kfree(n);
}

SYSCALL_DEFINE4(lkl_notifier_add, int, fd, unsigned int, events,
		unsigned long, cb, unsigned long, cookie)
{
	struct lkl_notifier *n;
	__poll_t mask;
	int id;

	if (!cb)
		return -EINVAL;
	n = kzalloc(sizeof(*n), GFP_KERNEL);
	if (!n)
		return -ENOMEM;
	n->file = fget(fd);
	if (!n->file) {
		kfree(n);
		return -EBADF;
	}
	if (!file_can_poll(n->file)) {
		fput(n->file);
		kfree(n);
		return -EPERM;
	}
	n->events = (__force __poll_t)events | EPOLLERR | EPOLLHUP;
	n->cb = (void (*)(void *))cb;
	n->cookie = (void *)cookie;
	INIT_LIST_HEAD(&n->pending);

	id = idr_alloc(&notifiers, n, 1, INT_MAX, GFP_KERNEL);
	if (id < 0) {
		fput(n->file);
		kfree(n);
		return id;
	}
	init_poll_funcptr(&n->pt, notifier_qproc);
	mask = vfs_poll(n->file, &n->pt);
	/* Ready before we listened: say so now, or the caller waits forever. */
	if (mask & n->events)
		notifier_queue(n);
	return id;
}

SYSCALL_DEFINE1(lkl_notifier_del, int, id)
{
	struct lkl_notifier *n = idr_remove(&notifiers, id);

	if (!n)
		return -ENOENT;
	notifier_free(n);
	return 0;
}

/* Runs the callbacks of queued notifiers; called holding the CPU, just
 * before this thread gives it up. */
void lkl_notify_flush(void)
{
	struct lkl_notifier *n;

	while (!list_empty(&pending_notifiers)) {
		n = list_first_entry(&pending_notifiers, struct lkl_notifier, pending);
		list_del(&n->pending);
		n->queued = false;
		n->cb(n->cookie);
	}
}

bool lkl_notify_pending(void)
{
	return !list_empty(&pending_notifiers);
}
