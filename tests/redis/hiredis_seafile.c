/* What seaf-server sends to Redis through hiredis, against one server:
 *   hiredis_seafile HOST PORT [PASSWORD]
 * AUTH (when a password is given), LPUSH repo_size_task, PUBLISH metric_channel (with a
 * subscriber on a second connection), and its object cache: SET k v EX n (binary values),
 * GET, EXISTS, DEL. Prints "<n> passed, <m> failed" and exits non-zero on any failure.
 * Built by keel's test (cc ... -lhiredis) against Debian's libhiredis-dev. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static int passed, failed;

static void check(const char *what, int ok, const char *detail) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s: %s\n", what, detail ? detail : "");
    }
}

static redisContext *connect_to(const char *host, int port, const char *password) {
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c == NULL || c->err) {
        printf("FAIL connect: %s\n", c ? c->errstr : "out of memory");
        exit(1);
    }
    redisSetTimeout(c, tv);
    if (password) {
        redisReply *r = redisCommand(c, "AUTH %s", password);
        check("AUTH", r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0,
              r ? (r->str ? r->str : "non-string reply") : c->errstr);
        if (r) freeReplyObject(r);
    }
    return c;
}

static void expect_int(redisContext *c, redisReply *r, const char *what, long long want) {
    char buf[256];
    if (r == NULL) {
        snprintf(buf, sizeof buf, "no reply: %s", c->errstr);
        check(what, 0, buf);
        return;
    }
    snprintf(buf, sizeof buf, "type %d int %lld str %s, want %lld", r->type, r->integer,
             r->str ? r->str : "-", want);
    check(what, r->type == REDIS_REPLY_INTEGER && r->integer == want, buf);
    freeReplyObject(r);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s HOST PORT [PASSWORD]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    const char *password = argc > 3 ? argv[3] : NULL;

    if (password) {
        /* without AUTH every command is refused */
        struct timeval tv = {5, 0};
        redisContext *n = redisConnectWithTimeout(host, port, tv);
        if (n && !n->err) {
            redisReply *r = redisCommand(n, "GET k");
            check("NOAUTH without AUTH",
                  r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOAUTH", 6) == 0,
                  r && r->str ? r->str : "no error reply");
            if (r) freeReplyObject(r);
            r = redisCommand(n, "AUTH %s", "wrong-password");
            check("WRONGPASS",
                  r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "WRONGPASS", 9) == 0,
                  r && r->str ? r->str : "no error reply");
            if (r) freeReplyObject(r);
        }
        if (n) redisFree(n);
    }

    redisContext *c = connect_to(host, port, password);
    redisContext *sub = connect_to(host, port, password);

    /* repo size queue */
    redisReply *r = redisCommand(c, "DEL repo_size_task");
    if (r) freeReplyObject(r);
    expect_int(c, redisCommand(c, "LPUSH repo_size_task %s", "9e0f7a1c-repo-1"),
               "LPUSH repo_size_task", 1);
    expect_int(c, redisCommand(c, "LPUSH repo_size_task %s", "9e0f7a1c-repo-2"),
               "LPUSH again", 2);
    r = redisCommand(c, "RPOP repo_size_task");
    check("RPOP oldest", r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "9e0f7a1c-repo-1") == 0,
          r && r->str ? r->str : "no string");
    if (r) freeReplyObject(r);

    /* metrics channel, with a subscriber */
    r = redisCommand(sub, "SUBSCRIBE metric_channel");
    check("SUBSCRIBE", r && r->type == REDIS_REPLY_ARRAY && r->elements == 3,
          r ? "" : sub->errstr);
    if (r) freeReplyObject(r);
    const char *metric = "{\"metric_name\": \"file_ops\", \"metric_value\": 3}";
    expect_int(c, redisCommand(c, "PUBLISH metric_channel %s", metric), "PUBLISH metric_channel", 1);
    void *vr = NULL;
    int rc = redisGetReply(sub, &vr);
    r = vr;
    check("message delivered",
          rc == REDIS_OK && r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
              strcmp(r->element[0]->str, "message") == 0 &&
              strcmp(r->element[1]->str, "metric_channel") == 0 &&
              strcmp(r->element[2]->str, metric) == 0,
          rc == REDIS_OK ? "unexpected message" : sub->errstr);
    if (r) freeReplyObject(r);

    /* object cache: binary value with EX */
    char value[300];
    for (size_t i = 0; i < sizeof value; i++) value[i] = (char)(i * 7);
    r = redisCommand(c, "SET %s %b EX %d", "obj:abcdef", value, sizeof value, 3600);
    check("SET EX", r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0,
          r && r->str ? r->str : c->errstr);
    if (r) freeReplyObject(r);
    r = redisCommand(c, "GET %s", "obj:abcdef");
    check("GET binary", r && r->type == REDIS_REPLY_STRING && r->len == sizeof value &&
                            memcmp(r->str, value, sizeof value) == 0,
          "value differs");
    if (r) freeReplyObject(r);
    r = redisCommand(c, "TTL %s", "obj:abcdef");
    check("TTL", r && r->type == REDIS_REPLY_INTEGER && r->integer > 3590 && r->integer <= 3600,
          "ttl out of range");
    if (r) freeReplyObject(r);
    expect_int(c, redisCommand(c, "EXISTS %s", "obj:abcdef"), "EXISTS", 1);
    expect_int(c, redisCommand(c, "DEL %s", "obj:abcdef"), "DEL", 1);
    expect_int(c, redisCommand(c, "EXISTS %s", "obj:abcdef"), "EXISTS after DEL", 0);
    r = redisCommand(c, "GET %s", "obj:abcdef");
    check("GET miss", r && r->type == REDIS_REPLY_NIL, "not nil");
    if (r) freeReplyObject(r);

    /* pipelined, as hiredis's redisAppendCommand does */
    r = redisCommand(c, "DEL %s", "pipelined");
    if (r) freeReplyObject(r);
    for (int i = 0; i < 100; i++) redisAppendCommand(c, "INCR %s", "pipelined");
    long long last = 0;
    for (int i = 0; i < 100; i++) {
        if (redisGetReply(c, &vr) == REDIS_OK && vr) {
            r = vr;
            if (r->type == REDIS_REPLY_INTEGER) last = r->integer;
            freeReplyObject(r);
        }
    }
    check("100 pipelined INCR", last == 100, "last INCR was not 100");

    redisFree(sub);
    redisFree(c);
    printf("hiredis_seafile: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
