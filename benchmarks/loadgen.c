/*
 * The benchmarks' load generator: one single-threaded epoll loop that drives a
 * line server on loopback and measures it.  Built by benchmarks/loadgen.py at
 * benchmark time (never committed as a binary).
 *
 * Modes (all print progress lines and one JSON object on stdout):
 *
 *   echo   closed loop: CONNS connections each keep DEPTH lines of SIZE bytes
 *          (newline included) in flight; a connection sends its next line when
 *          a reply comes back.  Every reply is checked byte for byte against
 *          PREFIX + line.  After WARMUP seconds it prints "measuring", after
 *          DURATION more seconds "done", then the figures of that window:
 *          replies, replies/s, p50/p99 latency, its own CPU time per reply,
 *          and how many replies differed from what was expected (whole run).
 *
 *   hello  closed loop of whole connections: CONNS slots each connect, read
 *          until the server closes, check the bytes against EXPECT, close and
 *          connect again.  Same phases; figures are connections per second.
 *
 *   hold   open CONNS connections and keep them idle, then obey commands read
 *          from standard input, one per line:
 *            ping   send one line on every connection and wait (at most
 *                   TIMEOUT seconds) for every reply; prints how many answered
 *            close  (or end of input) close everything and exit
 *
 * Connections are opened with at most PACE handshakes pending at once, so a
 * short listen backlog delays the run instead of failing it, and SOURCES > 1
 * spreads them over the source addresses 127.0.0.1 .. 127.0.0.SOURCES.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ---------------------------------------------------------------- options */

static const char *mode;
static enum { ECHO, HELLO, HOLD } kind;
static const char *host = "127.0.0.1";
static int port;
static int conns = 1;
static int depth = 1;
static int size = 16;
static const char *prefix = "S:";
static const char *expect = "";
static double warmup = 1.0;
static double duration = 3.0;
static double timeout = 30.0;
static int pace = 128;
static int sources = 1;

/* ------------------------------------------------------------------ clock */

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* ------------------------------------------------- latency histogram (ns) */
/* Log-linear buckets: 128 per power of two, so under 1% error. */

#define SUB_BITS 7
#define SUB (1 << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS) * SUB)

static uint64_t hist[NBUCKETS];
static uint64_t hist_count;

static inline int bucket_of(uint64_t v) {
    if (v < SUB) return (int)v;
    int msb = 63 - __builtin_clzll(v);
    return ((msb - SUB_BITS + 1) << SUB_BITS) + (int)((v >> (msb - SUB_BITS)) & (SUB - 1));
}

static uint64_t bucket_value(int i) {
    if (i < SUB) return (uint64_t)i;
    int msb = (i >> SUB_BITS) + SUB_BITS - 1;
    uint64_t low = (uint64_t)(i & (SUB - 1));
    /* middle of the bucket */
    uint64_t width = 1ULL << (msb - SUB_BITS);
    return ((SUB + low) << (msb - SUB_BITS)) + width / 2;
}

static inline void record(int64_t ns) {
    if (ns < 0) ns = 0;
    hist[bucket_of((uint64_t)ns)]++;
    hist_count++;
}

static double percentile_us(double p) {
    if (!hist_count) return 0.0;
    uint64_t want = (uint64_t)(p * (double)hist_count);
    if (want >= hist_count) want = hist_count - 1;
    uint64_t seen = 0;
    for (int i = 0; i < NBUCKETS; i++) {
        seen += hist[i];
        if (seen > want) return bucket_value(i) / 1000.0;
    }
    return 0.0;
}

/* ------------------------------------------------------------ connections */

enum state { IDLE, CONNECTING, OPEN, DONE };

struct conn {
    int fd;
    enum state state;
    int64_t started;   /* hello: when the connect began */
    int inflight;      /* echo: lines sent and not answered */
    int unsent;        /* echo: lines queued but not fully written */
    int written;       /* bytes of the first unsent line already written */
    size_t roff;       /* offset into the expected reply */
    int64_t *sent_at;  /* echo: ring of send times, DEPTH entries */
    int head, tail;
    int answered;      /* hold: got its ping reply */
    int bad;           /* the reply being read differs from the expected one */
    uint32_t events;   /* what epoll watches for it now */
};

static struct conn *cs;
static int ep;
static char *line;         /* one request line, SIZE bytes */
static char *lines;        /* DEPTH request lines back to back */
static char *reply;        /* the expected reply */
static size_t reply_len;
static char rbuf[1 << 16];

static uint64_t replies, mismatches, closed_early, connect_errors;
static int connecting, opened, running = 1, measuring;
static int next_to_open;   /* index of the next connection to open */

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void set_nonblock(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) die("fcntl");
}

static void start_connect(int i) {
    struct conn *c = &cs[i];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    if (kind != HELLO) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (sources > 1) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001 + (uint32_t)(i % sources));
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) die("bind");
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1) {
        fprintf(stderr, "bad host %s\n", host);
        exit(2);
    }
    c->fd = fd;
    c->state = CONNECTING;
    c->started = now_ns();
    c->roff = 0;
    c->bad = 0;
    c->inflight = c->unsent = c->written = 0;
    c->head = c->tail = 0;
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        connect_errors++;
        close(fd);
        c->state = DONE;
        return;
    }
    /* a greeting server speaks first: readable means connected (or refused) */
    c->events = kind == HELLO ? (EPOLLIN | EPOLLRDHUP) : (EPOLLOUT | EPOLLIN | EPOLLRDHUP);
    struct epoll_event ev = {.events = c->events, .data.u32 = (uint32_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    connecting++;
}

static void watch(struct conn *c, int i, uint32_t events) {
    if (c->events == events) return;
    c->events = events;
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl mod");
}

static void finish(struct conn *c) {
    if (c->state == CONNECTING) connecting--;
    if (c->state == OPEN) opened--;
    close(c->fd);
    c->state = DONE;
}

/* Write as much of the queued echo lines as the socket takes. */
static void flush_lines(struct conn *c, int i) {
    while (c->unsent > 0) {
        int n = c->unsent < depth ? c->unsent : depth;
        size_t len = (size_t)n * (size_t)size - (size_t)c->written;
        ssize_t w = write(c->fd, lines + c->written, len);
        if (w < 0) {
            if (errno == EAGAIN) break;
            closed_early++;
            finish(c);
            return;
        }
        size_t done = (size_t)w + (size_t)c->written;
        c->unsent -= (int)(done / (size_t)size);
        c->written = (int)(done % (size_t)size);
        if ((size_t)w < len) break;
    }
    watch(c, i, c->unsent > 0 ? (EPOLLIN | EPOLLOUT | EPOLLRDHUP) : (EPOLLIN | EPOLLRDHUP));
}

static void queue_line(struct conn *c, int64_t t) {
    c->sent_at[c->tail] = t;
    c->tail = (c->tail + 1) % depth;
    c->inflight++;
    c->unsent++;
}

/* Check received bytes against the expected reply; return replies completed.
 * A reply that differs in any byte counts once in MISMATCHES. */
static int check_replies(struct conn *c, const char *buf, size_t n) {
    int completed = 0;
    size_t i = 0;
    while (i < n) {
        size_t want = reply_len - c->roff;
        size_t take = n - i < want ? n - i : want;
        if (memcmp(buf + i, reply + c->roff, take) != 0) c->bad = 1;
        c->roff += take;
        i += take;
        if (c->roff == reply_len) {
            c->roff = 0;
            if (c->bad) mismatches++;
            c->bad = 0;
            completed++;
        }
    }
    return completed;
}

static void on_connected(struct conn *c, int i) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    connecting--;
    if (err) {
        connect_errors++;
        close(c->fd);
        c->state = DONE;
        return;
    }
    c->state = OPEN;
    opened++;
    if (kind == ECHO) {
        int64_t t = now_ns();
        for (int k = 0; k < depth; k++) queue_line(c, t);
        flush_lines(c, i);
    } else {
        watch(c, i, EPOLLIN | EPOLLRDHUP);
    }
}

static void on_echo_event(struct conn *c, int i, uint32_t events) {
    if (events & EPOLLIN) {
        for (;;) {
            ssize_t r = read(c->fd, rbuf, sizeof rbuf);
            if (r > 0) {
                int got = check_replies(c, rbuf, (size_t)r);
                if (got) {
                    int64_t t = now_ns();
                    for (int k = 0; k < got; k++) {
                        if (measuring) record(t - c->sent_at[c->head]);
                        c->head = (c->head + 1) % depth;
                        c->inflight--;
                        if (measuring) replies++;
                        if (running) queue_line(c, t);
                    }
                }
                if ((size_t)r < sizeof rbuf) break;
            } else if (r == 0 || errno != EAGAIN) {
                closed_early++;
                finish(c);
                return;
            } else {
                break;
            }
        }
    } else if (events & (EPOLLERR | EPOLLHUP)) {
        closed_early++;
        finish(c);
        return;
    }
    if (c->unsent > 0 || (events & EPOLLOUT)) flush_lines(c, i);
}

static void on_hello_event(struct conn *c, int i, uint32_t events) {
    for (;;) {
        ssize_t r = read(c->fd, rbuf, sizeof rbuf);
        if (r > 0) {
            if (c->roff + (size_t)r > reply_len ||
                memcmp(rbuf, reply + c->roff, (size_t)r) != 0)
                c->bad = 1;
            c->roff += (size_t)r;
            /* the server closed after this: no need to read the end of file */
            if (c->roff >= reply_len && (events & EPOLLRDHUP)) r = 0;
            else continue;
        }
        if (r < 0 && errno == EAGAIN) return;
        if (r < 0 && c->roff == 0 && errno == ECONNREFUSED) {
            connect_errors++;
            finish(c);
            if (running) start_connect(i);
            return;
        }
        /* end of file (or reset): one connection served */
        int64_t t = now_ns();
        if (r < 0 || c->roff != reply_len || c->bad) mismatches++;
        if (measuring) {
            record(t - c->started);
            replies++;
        }
        finish(c);
        if (running) start_connect(i);
        return;
    }
}

static int hold_answered;

static void on_hold_event(struct conn *c, int i) {
    (void)i;
    for (;;) {
        ssize_t r = read(c->fd, rbuf, sizeof rbuf);
        if (r > 0) {
            if (check_replies(c, rbuf, (size_t)r) && !c->answered) {
                c->answered = 1;
                hold_answered++;
            }
            continue;
        }
        if (r < 0 && errno == EAGAIN) return;
        closed_early++;
        finish(c);
        return;
    }
}

/* Open more connections while fewer than PACE handshakes are pending. */
static void open_more(void) {
    while (next_to_open < conns && connecting < pace) start_connect(next_to_open++);
}

static void dispatch(struct epoll_event *ev) {
    int i = (int)ev->data.u32;
    struct conn *c = &cs[i];
    if (c->state == CONNECTING && kind == HELLO) {
        connecting--;
        opened++;
        c->state = OPEN;
    }
    if (c->state == CONNECTING) {
        if (!(ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        on_connected(c, i);
        if (c->state != OPEN) {
            if (kind == HELLO && running) start_connect(i);
            return;
        }
        if (kind != ECHO) return;
        ev->events &= ~(uint32_t)EPOLLOUT;
    }
    if (c->state != OPEN) return;
    switch (kind) {
    case ECHO: on_echo_event(c, i, ev->events); break;
    case HELLO: on_hello_event(c, i, ev->events); break;
    case HOLD: on_hold_event(c, i); break;
    }
}

static int poll_once(int ms) {
    static struct epoll_event evs[1024];
    int n = epoll_wait(ep, evs, 1024, ms);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    int stdin_ready = 0;
    for (int k = 0; k < n; k++) {
        if (evs[k].data.u32 == UINT32_MAX) stdin_ready = 1;
        else dispatch(&evs[k]);
    }
    return stdin_ready;
}

/* ------------------------------------------------------------------ modes */

static void run_timed(void) {
    int64_t t0 = now_ns();
    int64_t deadline = t0 + (int64_t)(timeout * 1e9);
    /* open every connection first (hello slots open as they go) */
    while (next_to_open < conns) {
        open_more();
        poll_once(10);
        if (now_ns() > deadline) break;
    }
    if (kind == ECHO) {
        while (connecting > 0 && now_ns() < deadline) poll_once(10);
        if (opened < conns) {
            fprintf(stderr, "only %d of %d connections opened\n", opened, conns);
        }
    }
    int64_t start = now_ns() + (int64_t)(warmup * 1e9);
    while (now_ns() < start) poll_once(5);
    measuring = 1;
    printf("measuring\n");
    fflush(stdout);
    double cpu0 = cpu_seconds();
    int64_t m0 = now_ns();
    int64_t end = m0 + (int64_t)(duration * 1e9);
    while (now_ns() < end) poll_once(5);
    double elapsed = (now_ns() - m0) / 1e9;
    double cpu = cpu_seconds() - cpu0;
    measuring = 0;
    running = 0;
    printf("done\n");
    fflush(stdout);
    printf("{\"mode\": \"%s\", \"conns\": %d, \"depth\": %d, \"size\": %d, "
           "\"opened\": %d, \"replies\": %llu, \"seconds\": %.6f, "
           "\"per_second\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
           "\"client_cpu_s\": %.6f, \"client_cpu_us_per_reply\": %.3f, "
           "\"mismatches\": %llu, \"closed_early\": %llu, \"connect_errors\": %llu}\n",
           mode, conns, depth, size, opened, (unsigned long long)replies, elapsed,
           replies / elapsed, percentile_us(0.50), percentile_us(0.99), cpu,
           replies ? cpu * 1e6 / (double)replies : 0.0, (unsigned long long)mismatches,
           (unsigned long long)closed_early, (unsigned long long)connect_errors);
    fflush(stdout);
}

static void run_hold(void) {
    int64_t deadline = now_ns() + (int64_t)(timeout * 1e9);
    while ((next_to_open < conns || connecting > 0) && now_ns() < deadline) {
        open_more();
        poll_once(10);
    }
    printf("{\"connected\": %d, \"connect_errors\": %llu, \"pending\": %d}\n", opened,
           (unsigned long long)connect_errors, connecting);
    fflush(stdout);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0) die("epoll_ctl stdin");
    char cmd[64];
    size_t have = 0;
    for (;;) {
        if (!poll_once(-1)) continue;
        ssize_t r = read(0, cmd + have, sizeof cmd - 1 - have);
        if (r <= 0) return;
        have += (size_t)r;
        cmd[have] = 0;
        char *nl;
        while ((nl = strchr(cmd, '\n'))) {
            *nl = 0;
            if (!strcmp(cmd, "close")) return;
            if (!strcmp(cmd, "ping")) {
                int sent = 0;
                hold_answered = 0;
                for (int i = 0; i < conns; i++) {
                    struct conn *c = &cs[i];
                    c->answered = 0;
                    if (c->state != OPEN) continue;
                    if (write(c->fd, line, (size_t)size) == size) sent++;
                }
                int64_t until = now_ns() + (int64_t)(timeout * 1e9);
                while (hold_answered < sent && now_ns() < until) poll_once(10);
                printf("{\"sent\": %d, \"answered\": %d, \"still_open\": %d}\n", sent,
                       hold_answered, opened);
                fflush(stdout);
            }
            size_t rest = have - (size_t)(nl + 1 - cmd);
            memmove(cmd, nl + 1, rest);
            have = rest;
            cmd[have] = 0;
        }
    }
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen echo|hello|hold --port P [--host H] [--conns N] [--depth D]\n"
            "       [--size S] [--prefix P] [--expect TEXT] [--warmup S] [--duration S]\n"
            "       [--timeout S] [--pace N] [--sources K]\n");
    exit(2);
}

int main(int argc, char **argv) {
    static struct option opts[] = {
        {"host", 1, 0, 'H'},    {"port", 1, 0, 'p'},     {"conns", 1, 0, 'c'},
        {"depth", 1, 0, 'd'},   {"size", 1, 0, 's'},     {"prefix", 1, 0, 'P'},
        {"expect", 1, 0, 'e'},  {"warmup", 1, 0, 'w'},   {"duration", 1, 0, 't'},
        {"timeout", 1, 0, 'T'}, {"pace", 1, 0, 'a'},     {"sources", 1, 0, 'S'},
        {0, 0, 0, 0}};
    if (argc < 2) usage();
    mode = argv[1];
    if (!strcmp(mode, "echo")) kind = ECHO;
    else if (!strcmp(mode, "hello")) kind = HELLO;
    else if (!strcmp(mode, "hold")) kind = HOLD;
    else usage();
    optind = 2;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': conns = atoi(optarg); break;
        case 'd': depth = atoi(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'P': prefix = optarg; break;
        case 'e': expect = optarg; break;
        case 'w': warmup = atof(optarg); break;
        case 't': duration = atof(optarg); break;
        case 'T': timeout = atof(optarg); break;
        case 'a': pace = atoi(optarg); break;
        case 'S': sources = atoi(optarg); break;
        default: usage();
        }
    }
    if (port <= 0 || conns < 1 || depth < 1 || size < 1 || pace < 1 || sources < 1 ||
        sources > 250)
        usage();

    line = malloc((size_t)size);
    lines = malloc((size_t)size * (size_t)depth);
    for (int k = 0; k < size - 1; k++) line[k] = (char)('a' + k % 26);
    line[size - 1] = '\n';
    for (int k = 0; k < depth; k++) memcpy(lines + (size_t)k * size, line, (size_t)size);
    if (kind == HELLO) {
        reply = strdup(expect);
        reply_len = strlen(expect);
        /* allow \r\n in EXPECT written as the two characters \ and r, \ and n */
        size_t w = 0;
        for (size_t r = 0; r < reply_len; r++) {
            if (expect[r] == '\\' && r + 1 < reply_len && (expect[r + 1] == 'r' || expect[r + 1] == 'n')) {
                reply[w++] = expect[r + 1] == 'r' ? '\r' : '\n';
                r++;
            } else {
                reply[w++] = expect[r];
            }
        }
        reply_len = w;
    } else {
        reply_len = strlen(prefix) + (size_t)size;
        reply = malloc(reply_len);
        memcpy(reply, prefix, strlen(prefix));
        memcpy(reply + strlen(prefix), line, (size_t)size);
    }

    cs = calloc((size_t)conns, sizeof *cs);
    int64_t *rings = calloc((size_t)conns * (size_t)depth, sizeof(int64_t));
    if (!cs || !rings) die("calloc");
    for (int i = 0; i < conns; i++) {
        cs[i].sent_at = rings + (size_t)i * (size_t)depth;
        cs[i].state = IDLE;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    if (kind == HOLD) {
        set_nonblock(0);
        run_hold();
    } else {
        run_timed();
    }
    for (int i = 0; i < conns; i++)
        if (cs[i].state == OPEN || cs[i].state == CONNECTING) close(cs[i].fd);
    return 0;
}
