/*
 * finalstate-launcher: the process _PopenActivitySubprocess.start() launches on the fast path.
 *
 *   finalstate-launcher ZYGOTE_SOCKET SCRIPT_PATH --comm=HOST:PORT --logs=HOST:PORT
 *
 * It connects to --comm and --logs itself, so the supervisor's check that both connections
 * belong to the launched process tree passes at once, then hands the connected sockets and
 * its stdout/stderr to the fork server (impl/wire/scripted_runtime.py --zygote) with SCM_RIGHTS.
 * The fork server forks a child that runs the script on them. From then on this process is
 * the child's stand-in, as far as the supervisor can tell:
 *
 *   - a signal sent to it (the supervisor's kill: SIGTERM, SIGINT, ...) is forwarded to the child;
 *     killed by one it cannot forward (SIGKILL), it hangs up on the fork server, which kills the child;
 *   - when the fork server reports the child's exit status it ends the same way: the same
 *     exit code, or death by the same signal;
 *   - it keeps its copies of the comm and logs sockets until the child has received
 *     StartupDetails (the fork server's child says "R"), then drops them, so that the
 *     child's closing of a socket is the supervisor's EOF.
 *
 *   - it answers the child's barrier query "Q" with "A", but only after any signal it has
 *     received was forwarded: a signal that reached it before the child's query is handled
 *     before the query is read, so the child can never run ahead of the supervisor's kill.
 *
 * Messages on the fork-server connection: "P<pid>\n" (the child's pid), "R" (drop the
 * copies), "Q" (barrier query), "X<code>\n" (the child's exit, subprocess-style).
 * Exit 70: protocol failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <fcntl.h>

#define PROTOCOL_ERROR 70

static volatile sig_atomic_t child_pid = 0;
static volatile sig_atomic_t pending[65];
static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM};

static void forward(int sig) {
    if (child_pid > 0)
        kill(child_pid, sig);
    else
        pending[sig] = 1;
}

static void fail(const char *what) {
    dprintf(2, "finalstate-launcher: %s: %s\n", what, strerror(errno));
    _exit(PROTOCOL_ERROR);
}

static int connect_tcp(const char *arg) {
    const char *colon = strrchr(arg, ':');
    if (!colon) { errno = EINVAL; fail(arg); }
    char host[64];
    size_t n = (size_t)(colon - arg);
    if (n >= sizeof host) { errno = EINVAL; fail(arg); }
    memcpy(host, arg, n);
    host[n] = 0;
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) { errno = EINVAL; fail(host); }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket");
    while (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        if (errno != EINTR) fail("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Close with a reset, leaving no TIME_WAIT (see impl/wire/scripted_runtime.py). */
    struct linger reset = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    return fd;
}

static void end_like_child(int code) {
    if (code >= 0) _exit(code);
    int sig = -code;
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    kill(getpid(), sig);
    _exit(128 + sig);
}

int main(int argc, char **argv) {
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    if (argc < 5) {
        dprintf(2, "usage: %s ZYGOTE_SOCKET SCRIPT_PATH --comm=HOST:PORT --logs=HOST:PORT\n", argv[0]);
        return 2;
    }
    const char *comm_arg = NULL, *logs_arg = NULL;
    for (int i = 3; i < argc; i++) {
        if (strncmp(argv[i], "--comm=", 7) == 0) comm_arg = argv[i] + 7;
        if (strncmp(argv[i], "--logs=", 7) == 0) logs_arg = argv[i] + 7;
    }
    if (!comm_arg || !logs_arg) { errno = EINVAL; fail("--comm and --logs are required"); }

    /* The child and the fork server may both be gone by the time a barrier answer is written. */
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {0};
    sa.sa_handler = forward;
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++)
        sigaction(forwarded[i], &sa, NULL);

    int comm = connect_tcp(comm_arg);
    int logs = connect_tcp(logs_arg);

    int zygote = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (zygote < 0) fail("socket");
    struct sockaddr_un un = {0};
    un.sun_family = AF_UNIX;
    strncpy(un.sun_path, argv[1], sizeof un.sun_path - 1);
    if (connect(zygote, (struct sockaddr *)&un, sizeof un) < 0) fail("connect to the fork server");

    int fds[4] = {comm, logs, 1, 2};
    char control[CMSG_SPACE(sizeof fds)];
    memset(control, 0, sizeof control);
    struct iovec iov = {.iov_base = argv[2], .iov_len = strlen(argv[2])};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof fds);
    while (sendmsg(zygote, &msg, 0) < 0)
        if (errno != EINTR) fail("sendmsg");

    /* The child has stdout and stderr now; ours must not hold the supervisor's EOF back. */
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    close(devnull);

    char buf[256];
    size_t len = 0;
    int queries = 0; /* barrier queries held back until the child's pid is known */
    for (;;) {
        ssize_t n = read(zygote, buf + len, sizeof buf - 1 - len);
        if (n < 0) {
            if (errno == EINTR) continue;
            _exit(PROTOCOL_ERROR);
        }
        if (n == 0) _exit(PROTOCOL_ERROR); /* the fork server went away without a status */
        len += (size_t)n;
        buf[len] = 0;
        for (;;) {
            if (len == 0) break;
            if (buf[0] == 'R' || buf[0] == 'Q') {
                if (buf[0] == 'R') {
                    if (comm >= 0) { close(comm); comm = -1; }
                    if (logs >= 0) { close(logs); logs = -1; }
                } else {
                    queries++;
                }
                memmove(buf, buf + 1, --len);
                buf[len] = 0;
                for (; queries && child_pid > 0; queries--)
                    (void)!write(zygote, "A", 1); /* a dead child needs no answer */
                continue;
            }
            char *nl = memchr(buf, '\n', len);
            if (!nl) break;
            *nl = 0;
            long value = strtol(buf + 1, NULL, 10);
            if (buf[0] == 'P') {
                child_pid = (sig_atomic_t)value;
                for (int s = 1; s < 65; s++)
                    if (pending[s]) { pending[s] = 0; kill((pid_t)value, s); }
                for (; queries; queries--)
                    (void)!write(zygote, "A", 1);
            } else if (buf[0] == 'X') {
                end_like_child((int)value);
            } else {
                _exit(PROTOCOL_ERROR);
            }
            size_t used = (size_t)(nl - buf) + 1;
            memmove(buf, nl + 1, len - used);
            len -= used;
            buf[len] = 0;
        }
    }
}
