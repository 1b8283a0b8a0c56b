// Definitions for the declarations in CFerryLinux.h that need _GNU_SOURCE.
#define _GNU_SOURCE
#include <sched.h>
#include <unistd.h>
#include <sys/syscall.h>
#include "CFerryLinux.h"

extern char **environ;

int ferry_setns(int fd, int nstype) { return setns(fd, nstype); }
int ferry_clone_newnet(void) { return CLONE_NEWNET; }
char *const *ferry_environ(void) { return environ; }
pid_t ferry_gettid(void) { return (pid_t)syscall(SYS_gettid); }
int ferry_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
