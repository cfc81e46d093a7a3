// hako-init: PID 1 of a container run with `hako run --init` (docker's
// docker-init, tini). The command runs as its only child; every signal this
// process can catch is passed on to it, every orphan the container leaves is
// reaped, and the exit status is the command's (128 + N for signal N).
//
// Linked statically (no libc in the container is needed): the engine binds it
// read-only at /sbin/hako-init. A few pages of memory; nothing allocated.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *a, const char *b) {
    write(2, "hako-init: ", 11);
    write(2, a, strlen(a));
    if (b) { write(2, ": ", 2); write(2, b, strlen(b)); }
    write(2, "\n", 1);
}

int main(int argc, char **argv) {
    int first = 1;
    if (first < argc && strcmp(argv[first], "--") == 0) first++;
    if (first >= argc) { say("no command to run", NULL); return 127; }

    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t child = fork();
    if (child < 0) { say("fork", strerror(errno)); return 126; }
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[first], argv + first);
        int e = errno;
        say(argv[first], strerror(e));
        _exit(e == ENOENT ? 127 : 126);
    }
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&all, &si);
        if (sig < 0) continue;
        if (sig != SIGCHLD) {
            kill(child, sig);
            continue;
        }
        int status;
        pid_t w;
        while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
            if (w != child) continue;
            if (WIFEXITED(status)) return WEXITSTATUS(status);
            return 128 + WTERMSIG(status);
        }
    }
}
