/* io_uring under the tier: ENOSYS, so programs fall back to plain calls. */
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "raw.h"
int main(void)
{
	long setup = raw2(425, 8, 0);
	long enter = raw6(426, 3, 1, 0, 0, 0, 0);
	long reg = raw6(427, 3, 0, 0, 0, 0, 0);
	errno = 0;
	long via = syscall(425, 8, NULL);
	printf("setup %ld enter %ld register %ld syscall() %ld errno %d\n", setup, enter, reg, via, errno);
	return !(setup == -ENOSYS && enter == -ENOSYS && reg == -ENOSYS && via == -1 && errno == ENOSYS);
}
