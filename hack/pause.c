/* The pod sandbox process of the local real node: holds the pod's namespaces and does
 * nothing else. It sleeps until SIGTERM or SIGINT and, as PID 1 of the pod, reaps the
 * children that get re-parented to it. Built static (gcc -static) into a scratch image
 * by hack/build-image.sh, so the node needs no registry for it. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signum) { (void)signum; _exit(0); }

static void reap(int signum) {
  (void)signum;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction on_stop = {.sa_handler = stop};
  struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGINT, &on_stop, NULL);
  sigaction(SIGTERM, &on_stop, NULL);
  sigaction(SIGCHLD, &on_child, NULL);
  for (;;) pause();
  return 0;
}
