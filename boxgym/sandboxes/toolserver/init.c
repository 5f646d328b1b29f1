/* boxgym-init --ttl SECONDS --note PATH -- PROGRAM [ARGS...]
 *
 * The container's PID 1. It starts PROGRAM (the tool server), reaps every
 * orphan, passes SIGTERM/SIGINT/SIGHUP on to the server, and ends the
 * container in three cases, killing every process in it (kill(-1) from PID 1
 * spares only itself):
 *
 *   - the server ended (normally, by its own TTL, or killed);
 *   - a stop signal was passed on and the server did not end within 2 s;
 *   - SECONDS passed since the start: the absolute TTL, which holds even
 *     when the server is wedged (stopped, stuck in the kernel, starved), so
 *     no container outlives its TTL by more than that.
 *
 * Before it exits it writes one line to PATH, in the host's bind-mounted
 * directory, so the host can tell what happened even after Docker removed the
 * container (AutoRemove): why it ended, how the server ended, and how often
 * the memory limit's OOM killer and the pids limit struck in the container's
 * life. A `docker kill` kills PID 1 first, so it leaves "running" there:
 * that is how the host tells a kill from outside from the agent's doing.
 *
 *   reason=server-exited|stopped|ttl server=exit:N|signal:N|running oom_kills=N memory_limit_reached=0|1 pids_max_hits=N
 *
 * oom_kills counts the OOM killer's kills in the container's memory cgroup;
 * memory_limit_reached says the container's own limit was reached (v2: its
 * "oom" events; v1: the usage's high-water mark), which a host-wide OOM does
 * not need.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOTE_SIZE 255
#define STOP_GRACE_S 2.0

static long counter(const char *const *paths, const char *key) {
    for (; *paths; paths++) {
        FILE *fh = fopen(*paths, "r");
        if (!fh) continue;
        char name[64];
        long value;
        while (fscanf(fh, "%63s %ld", name, &value) == 2) {
            if (strcmp(name, key) == 0) {
                fclose(fh);
                return value;
            }
        }
        fclose(fh);
    }
    return 0;
}

static long number(const char *path) {
    FILE *fh = fopen(path, "r");
    long value = 0;
    if (fh) {
        if (fscanf(fh, "%ld", &value) != 1) value = 0;
        fclose(fh);
    }
    return value;
}

static int limit_reached(void) {
    static const char *const v2[] = {"/sys/fs/cgroup/memory.events", NULL};
    if (counter(v2, "oom") > 0) return 1;
    /* v1: the usage's high-water mark stands at the limit once the limit was hit (its fail
     * counters are not kept on every kernel). */
    long limit = number("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    return limit > 0 && number("/sys/fs/cgroup/memory/memory.max_usage_in_bytes") >= limit;
}

static const char *const OOM_FILES[] = {"/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control", NULL};
static const char *const PIDS_FILES[] = {"/sys/fs/cgroup/pids.events", "/sys/fs/cgroup/pids/pids.events", NULL};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int note_fd = -1;

static void note(const char *text) {
    /* The file was written at start at its full size: overwriting its page needs no new memory. */
    char line[NOTE_SIZE + 1];
    memset(line, ' ', NOTE_SIZE);
    line[NOTE_SIZE] = '\0';
    size_t n = strlen(text);
    memcpy(line, text, n < NOTE_SIZE - 1 ? n : NOTE_SIZE - 1);
    line[NOTE_SIZE - 1] = '\n';
    if (note_fd >= 0 && pwrite(note_fd, line, NOTE_SIZE, 0) != NOTE_SIZE) { /* nothing more to do */ }
}

int main(int argc, char **argv) {
    double ttl = 0;
    const char *note_path = NULL;
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--ttl") == 0 && i + 1 < argc) ttl = atof(argv[++i]);
        else if (strcmp(argv[i], "--note") == 0 && i + 1 < argc) note_path = argv[++i];
    }
    if (i + 1 >= argc) {
        fprintf(stderr, "usage: boxgym-init --ttl SECONDS --note PATH -- PROGRAM [ARGS...]\n");
        return 125;
    }
    char **program = argv + i + 1;
    int pid1 = getpid() == 1; /* only PID 1 may kill(-1): anywhere else that is every process of the user */
    double start = now();
    double deadline = ttl > 0 ? start + ttl : 0;
    long oom_start = counter(OOM_FILES, "oom_kill");
    long pids_start = counter(PIDS_FILES, "max");
    if (note_path) {
        note_fd = open(note_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        note("reason=running server=running oom_kills=0 memory_limit_reached=0 pids_max_hits=0");
    }

    sigset_t handled, old;
    sigemptyset(&handled);
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM};
    for (size_t k = 0; k < sizeof sigs / sizeof *sigs; k++) sigaddset(&handled, sigs[k]);
    sigprocmask(SIG_BLOCK, &handled, &old);

    pid_t server = fork();
    if (server < 0) {
        perror("boxgym-init: fork");
        return 125;
    }
    if (server == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(program[0], program);
        fprintf(stderr, "boxgym-init: cannot run '%s': %s\n", program[0], strerror(errno));
        _exit(127);
    }

    const char *reason = NULL;
    int status = 0, server_done = 0;
    double stop_by = 0;
    while (!reason) {
        double wake = deadline;
        if (stop_by && (!wake || stop_by < wake)) wake = stop_by;
        struct timespec wait = {3600, 0};
        if (wake) {
            double left = wake - now();
            if (left < 0) left = 0;
            wait.tv_sec = (time_t)left;
            wait.tv_nsec = (long)((left - (double)wait.tv_sec) * 1e9);
        }
        int sig = sigtimedwait(&handled, NULL, &wait);
        if (sig == SIGCHLD) {
            int st;
            pid_t pid;
            while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
                if (pid == server) {
                    status = st;
                    server_done = 1;
                }
            }
            if (server_done) reason = "server-exited";
        } else if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT) {
            if (!stop_by) {
                kill(server, sig);
                stop_by = now() + STOP_GRACE_S;
            }
        } else if (sig < 0 && errno != EINTR && errno != EAGAIN) {
            perror("boxgym-init: sigtimedwait");
        }
        double t = now();
        if (!reason && deadline && t >= deadline) reason = "ttl";
        if (!reason && stop_by && t >= stop_by) reason = "stopped";
    }

    char server_state[32] = "running";
    if (server_done && WIFEXITED(status)) snprintf(server_state, sizeof server_state, "exit:%d", WEXITSTATUS(status));
    else if (server_done && WIFSIGNALED(status)) snprintf(server_state, sizeof server_state, "signal:%d", WTERMSIG(status));
    char line[NOTE_SIZE];
    snprintf(line, sizeof line, "reason=%s server=%s oom_kills=%ld memory_limit_reached=%d pids_max_hits=%ld", reason,
             server_state, counter(OOM_FILES, "oom_kill") - oom_start, limit_reached(),
             counter(PIDS_FILES, "max") - pids_start);
    note(line);

    if (pid1) kill(-1, SIGKILL);
    else if (!server_done) kill(server, SIGKILL);
    double give_up = now() + 1.0; /* reap what was killed, then go: the container's end removes the rest */
    while (now() < give_up) {
        pid_t pid = waitpid(-1, NULL, WNOHANG);
        if (pid < 0) break; /* ECHILD: none left */
        if (pid == 0) usleep(1000);
    }
    if (server_done && WIFEXITED(status)) return WEXITSTATUS(status);
    if (server_done && WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return strcmp(reason, "ttl") == 0 ? 124 : 143;
}
