/* boxgym-spawn UID GID PROGRAM [ARGS...]
 *
 * Becomes a child subreaper (kept across execve), makes itself the first
 * choice of the out-of-memory killer (oom_score_adj 1000, against the tool
 * server's 0: an agent that exhausts memory loses its own processes, not the
 * server, so it cannot turn its failure into an "infrastructure failure"),
 * and, for a command that runs as another user than root (the agent's),
 * takes the SCHED_IDLE scheduling policy: its processes run only on CPU time
 * that nothing else in the container wants, so a fork bomb cannot starve the
 * server or the kill that ends it (the container's RLIMIT_NICE of 0 keeps
 * them from taking a normal policy back). Then it drops to UID/GID with no
 * supplementary groups when they differ from its own, and executes PROGRAM.
 * The tool server starts every command through it: the same work done in a
 * Python preexec_fn forces fork() instead of vfork() and costs ~2 ms a call.
 * Built by the image builder; the server falls back to preexec_fn without it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: boxgym-spawn UID GID PROGRAM [ARGS...]\n");
        return 125;
    }
    uid_t uid = (uid_t)strtoul(argv[1], NULL, 10);
    gid_t gid = (gid_t)strtoul(argv[2], NULL, 10);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
        perror("boxgym-spawn: prctl");
        return 125;
    }
    int oom = open("/proc/self/oom_score_adj", O_WRONLY);
    if (oom >= 0) {
        /* Raising one's own score needs no privilege; failing to is not fatal. */
        if (write(oom, "1000", 4) != 4) { /* keep going */ }
        close(oom);
    }
    if (uid != 0) {
        struct sched_param idle = {0};
        if (sched_setscheduler(0, SCHED_IDLE, &idle) != 0) {
            perror("boxgym-spawn: SCHED_IDLE");
            return 125;
        }
    }
    if (uid != getuid() || gid != getgid()) {
        if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
            perror("boxgym-spawn: dropping privileges");
            return 125;
        }
    }
    execvp(argv[3], argv + 3);
    fprintf(stderr, "boxgym: cannot run '%s': %s\n", argv[3], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}
