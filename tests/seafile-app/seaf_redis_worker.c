/* seaf-server's side of Redis in keel's end-to-end test (crates/keel/tests/it/seafile.rs), on
 * libhiredis like seaf-server:
 *   seaf_redis_worker ENV_FILE NODE LOG CONTROL ACK
 * reads REDIS_HOST, REDIS_PORT and REDIS_PASSWORD from ENV_FILE (what `keel seafile-config
 * --format env` printed for NODE), then loops: `LPUSH repo_size_task NODE-N` and
 * `PUBLISH metric_channel NODE:N`, each on the same connection (AUTH on connect), every 20 ms.
 * LOG lines: `START ts pid NODE`; `PUSH OK|ERR ts id` (OK = an integer reply: acknowledged; ERR =
 * an error reply or none: ambiguous); `PUB OK|ERR sent_ts acked_ts seq`; `CONN ts error`.
 * A failed command drops the connection; the next iteration reconnects (1 s timeouts).
 * CONTROL is `seq pause epoch exit`; on a new seq it writes seq to ACK (nothing in flight then),
 * sleeps while paused, returns 0 on exit. Never exits on Redis errors. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static double now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec / 1e6;
}

static char host[256], password[512];
static int port;

static void read_env(const char *path) {
    FILE *f = fopen(path, "r");
    char line[1024];
    if (!f) {
        perror(path);
        exit(2);
    }
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (strncmp(line, "REDIS_HOST=", 11) == 0)
            snprintf(host, sizeof host, "%s", line + 11);
        else if (strncmp(line, "REDIS_PORT=", 11) == 0)
            port = atoi(line + 11);
        else if (strncmp(line, "REDIS_PASSWORD=", 15) == 0)
            snprintf(password, sizeof password, "%s", line + 15);
    }
    fclose(f);
    if (!host[0] || !port) {
        fprintf(stderr, "%s: no REDIS_HOST/REDIS_PORT\n", path);
        exit(2);
    }
}

static redisContext *connect_redis(FILE *log) {
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c == NULL || c->err) {
        fprintf(log, "CONN %.3f connect:%s\n", now(), c ? c->errstr : "oom");
        if (c) redisFree(c);
        return NULL;
    }
    struct timeval cmd = {5, 0};
    redisSetTimeout(c, cmd);
    if (password[0]) {
        redisReply *r = redisCommand(c, "AUTH %s", password);
        int ok = r && r->type == REDIS_REPLY_STATUS;
        if (!ok)
            fprintf(log, "CONN %.3f auth:%s\n", now(), r ? (r->str ? r->str : "?") : c->errstr);
        if (r) freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

static int read_control(const char *path, long *seq, int *pause, int *exit_) {
    FILE *f = fopen(path, "r");
    long epoch;
    if (!f) return 0;
    int n = fscanf(f, "%ld %d %ld %d", seq, pause, &epoch, exit_);
    fclose(f);
    return n == 4;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s ENV_FILE NODE LOG CONTROL ACK\n", argv[0]);
        return 2;
    }
    const char *node = argv[2], *control = argv[4], *ack = argv[5];
    read_env(argv[1]);
    FILE *log = fopen(argv[3], "a");
    if (!log) {
        perror(argv[3]);
        return 2;
    }
    setvbuf(log, NULL, _IOLBF, 0);
    fprintf(log, "START %.3f %d %s\n", now(), (int)getpid(), node);
    redisContext *c = NULL;
    long seen = -1, n = 0;
    int paused = 0;
    for (;;) {
        long seq;
        int pause, exit_;
        if (read_control(control, &seq, &pause, &exit_) && seq != seen) {
            char tmp[4096];
            snprintf(tmp, sizeof tmp, "%s.tmp", ack);
            FILE *a = fopen(tmp, "w");
            if (a) {
                fprintf(a, "%ld\n", seq);
                fclose(a);
                rename(tmp, ack);
            }
            seen = seq;
            paused = pause;
            if (exit_) return 0;
        }
        if (paused) {
            usleep(50000);
            continue;
        }
        if (c == NULL && (c = connect_redis(log)) == NULL) {
            usleep(100000);
            continue;
        }
        n++;
        char id[128];
        snprintf(id, sizeof id, "%s-%ld", node, n);
        redisReply *r = redisCommand(c, "LPUSH repo_size_task %s", id);
        int ok = r && r->type == REDIS_REPLY_INTEGER;
        fprintf(log, "PUSH %s %.3f %s%s%s\n", ok ? "OK" : "ERR", now(), id, ok ? "" : " ",
                ok ? "" : (r ? (r->str ? r->str : "?") : c->errstr));
        int broken = r == NULL;
        if (r) freeReplyObject(r);
        if (broken) {
            redisFree(c);
            c = NULL;
            continue;
        }
        double sent = now();
        r = redisCommand(c, "PUBLISH metric_channel %s:%ld", node, n);
        ok = r && r->type == REDIS_REPLY_INTEGER;
        fprintf(log, "PUB %s %.3f %.3f %ld\n", ok ? "OK" : "ERR", sent, now(), n);
        broken = r == NULL;
        if (r) freeReplyObject(r);
        if (broken) {
            redisFree(c);
            c = NULL;
        }
        usleep(20000);
    }
}
