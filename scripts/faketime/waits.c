/* Preloaded before libfaketime by scripts/test.sh when OZON_TEST_CLOCK is set.
 *
 * libfaketime wraps the waiting calls (epoll_wait, poll, select, nanosleep) and stops faking the
 * clock while the real call runs, so a signal handler that reads the clock during the wait sees the
 * real time. PostgreSQL's timeouts are such handlers (SIGALRM during a latch wait): with the clock a
 * year ahead, statement_timeout, lock_timeout and the deadlock check would wait a year. The clock is
 * only moved by an offset (rate 1), so these calls need no rescaling: they go straight to the kernel
 * here, and every clock read, in a handler or not, stays faked. Only an absolute deadline on the
 * wall clock (clock_nanosleep with CLOCK_REALTIME and TIMER_ABSTIME) is moved back by the offset.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define KERNEL_SIGSET_SIZE 8

int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout, const sigset_t *mask)
{
    return (int)syscall(SYS_epoll_pwait, epfd, events, maxevents, timeout, mask, KERNEL_SIGSET_SIZE);
}

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    return epoll_pwait(epfd, events, maxevents, timeout, NULL);
}

int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout, const sigset_t *mask)
{
    struct timespec copy, *left = NULL;
    if (timeout != NULL) { /* the kernel writes the time left into it */
        copy = *timeout;
        left = &copy;
    }
    return (int)syscall(SYS_ppoll, fds, nfds, left, mask, KERNEL_SIGSET_SIZE);
}

int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    struct timespec ts;
    if (timeout < 0)
        return ppoll(fds, nfds, NULL, NULL);
    ts.tv_sec = timeout / 1000;
    ts.tv_nsec = (long)(timeout % 1000) * 1000000L;
    return ppoll(fds, nfds, &ts, NULL);
}

int select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds, struct timeval *timeout)
{
    return (int)syscall(SYS_select, nfds, readfds, writefds, exceptfds, timeout);
}

int pselect(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds, const struct timespec *timeout,
            const sigset_t *mask)
{
    struct timespec copy, *left = NULL;
    struct { const sigset_t *set; size_t size; } sig = {mask, KERNEL_SIGSET_SIZE};
    if (timeout != NULL) {
        copy = *timeout;
        left = &copy;
    }
    return (int)syscall(SYS_pselect6, nfds, readfds, writefds, exceptfds, left, mask ? &sig : NULL);
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
    return (int)syscall(SYS_nanosleep, req, rem);
}

int clock_nanosleep(clockid_t clock, int flags, const struct timespec *req, struct timespec *rem)
{
    struct timespec real = *req;
    long r;
    if (clock == CLOCK_REALTIME && (flags & TIMER_ABSTIME)) {
        struct timespec faked, now;
        clock_gettime(CLOCK_REALTIME, &faked); /* through libfaketime */
        syscall(SYS_clock_gettime, CLOCK_REALTIME, &now);
        real.tv_sec -= faked.tv_sec - now.tv_sec;
        real.tv_nsec -= faked.tv_nsec - now.tv_nsec;
        while (real.tv_nsec < 0) {
            real.tv_nsec += 1000000000L;
            real.tv_sec -= 1;
        }
        while (real.tv_nsec >= 1000000000L) {
            real.tv_nsec -= 1000000000L;
            real.tv_sec += 1;
        }
    }
    /* clock_nanosleep returns the error number itself instead of setting errno */
    r = syscall(SYS_clock_nanosleep, clock, flags, &real, rem);
    return r == -1 ? errno : 0;
}
