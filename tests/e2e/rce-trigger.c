/* A remote-code-execution shape for tests/e2e_nginx.rs (issue 9, lineage):
 * preloaded into nginx (LD_PRELOAD, set by the image's entrypoint script), a
 * constructor starts a thread in the nginx master that waits for a trigger
 * file to appear (the test creates it on the host, in a directory bind-mounted
 * read-only at /rce-trigger, so the trigger is no action of the container),
 * then forks and execs `/bin/sh -c id` once: the real /usr/sbin/nginx starting
 * a shell, as an exploited server would.
 *
 * The poll is a stat() every 50 ms (no open, no event the profile could hold).
 * The thread blocks every signal, so nginx's signal handling (SIGCHLD, SIGQUIT,
 * …) stays on its main thread; a forked child has only the forking thread, so
 * nginx's workers carry no poller. The child unblocks signals before its exec.
 * nginx's master reaps the child (its SIGCHLD loop reaps any pid).
 *
 *   cc -shared -fPIC -O2 -pthread -o rce-trigger.so rce-trigger.c
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define TRIGGER "/rce-trigger/fire"

static void *wait_for_trigger(void *unused)
{
    struct stat st;
    struct timespec pause = {0, 50 * 1000 * 1000};
    (void)unused;
    while (stat(TRIGGER, &st) != 0)
        nanosleep(&pause, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        char *argv[] = {"sh", "-c", "id", NULL};
        execve("/bin/sh", argv, environ);
        _exit(127);
    }
    return NULL;
}

__attribute__((constructor)) static void start_poller(void)
{
    sigset_t all, old;
    pthread_t t;
    pthread_attr_t attr;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_create(&t, &attr, wait_for_trigger, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
