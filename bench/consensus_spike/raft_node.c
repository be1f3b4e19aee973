/* One member of a 3-member C-Raft (libraft, Debian's libraft-dev) group on
 * 127.0.0.1, for the replication spike of issue 20 (docs/adr/0036).
 *
 *   raft_node ID DIR PORT1 PORT2 PORT3 ENTRY_BYTES IN_FLIGHT ELECTION_MS
 *
 * Member ID (1-3) keeps its log in DIR (libraft's uv backend: segments
 * written with O_DIRECT/O_DSYNC or fsync, so an entry is committed once a
 * majority has it durable). While it leads, it keeps IN_FLIGHT entries of
 * ENTRY_BYTES (a group commit of the ingest log: ~16 KB for 1,000
 * readings) proposed; each second it prints the entries committed and the
 * p50/p99 of proposal-to-commit. On becoming leader it prints
 * "leader <wall ms>", at its first commit as leader "first-commit <wall ms>",
 * so that a driver can time a failover. Stops on SIGTERM. */
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define MAX_SAMPLES 200000

static struct raft raft;
static struct raft_io io;
static struct raft_uv_transport transport;
static struct raft_fsm fsm;
static uv_loop_t loop;
static uv_timer_t ticker, feeder;
static uv_signal_t sigterm;
static size_t entry_bytes;
static unsigned in_flight_max, in_flight;
static unsigned long long applied, committed_this_second;
static double samples[MAX_SAMPLES];
static unsigned n_samples;
static int was_leader, first_commit_done;

static double now_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return tv.tv_sec * 1000.0 + tv.tv_usec / 1000.0;
}

/* The state is a counter: a snapshot is 8 bytes, so that the log is
 * truncated as the ingest log is behind its checkpoints. */
static int fsm_snapshot(struct raft_fsm *f, struct raft_buffer *bufs[], unsigned *n) {
  (void)f;
  *bufs = raft_malloc(sizeof **bufs);
  (*bufs)[0].len = sizeof applied;
  (*bufs)[0].base = raft_malloc(sizeof applied);
  memcpy((*bufs)[0].base, &applied, sizeof applied);
  *n = 1;
  return 0;
}

static int fsm_restore(struct raft_fsm *f, struct raft_buffer *buf) {
  (void)f;
  memcpy(&applied, buf->base, sizeof applied);
  raft_free(buf->base);
  return 0;
}

static int fsm_apply(struct raft_fsm *f, const struct raft_buffer *buf, void **result) {
  (void)f;
  (void)buf;
  ++applied;
  *result = NULL;
  return 0;
}

struct proposal {
  struct raft_apply req;
  double at;
};

static void propose(void);

static void on_applied(struct raft_apply *req, int status, void *result) {
  struct proposal *p = req->data;
  (void)result;
  --in_flight;
  if (status == 0) {
    ++committed_this_second;
    if (n_samples < MAX_SAMPLES)
      samples[n_samples++] = now_ms() - p->at;
    if (!first_commit_done && was_leader) {
      first_commit_done = 1;
      printf("first-commit %.0f\n", now_ms());
      fflush(stdout);
    }
  }
  free(p);
  propose();
}

static void propose(void) {
  while (raft_state(&raft) == RAFT_LEADER && in_flight < in_flight_max) {
    struct proposal *p = malloc(sizeof *p);
    struct raft_buffer buf;
    buf.len = entry_bytes;
    buf.base = raft_malloc(entry_bytes);
    memset(buf.base, 'r', entry_bytes);
    p->req.data = p;
    p->at = now_ms();
    if (raft_apply(&raft, &p->req, &buf, 1, on_applied) != 0) {
      raft_free(buf.base);
      free(p);
      return;
    }
    ++in_flight;
  }
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void on_tick(uv_timer_t *t) {
  (void)t;
  int leader = raft_state(&raft) == RAFT_LEADER;
  if (leader && n_samples > 0) {
    qsort(samples, n_samples, sizeof samples[0], by_value);
    printf("second %llu committed, %.1f MB/s, p50 %.2f ms, p99 %.2f ms\n", committed_this_second,
           committed_this_second * entry_bytes / 1e6, samples[n_samples / 2],
           samples[(unsigned)(n_samples * 0.99)]);
  }
  printf("state %d term %llu last %llu commit %llu applied %llu\n", raft_state(&raft),
           (unsigned long long)raft.current_term, (unsigned long long)raft_last_index(&raft),
           (unsigned long long)raft.commit_index, applied);
  committed_this_second = 0;
  n_samples = 0;
  fflush(stdout);
}

/* Every millisecond: notes a new leadership at once (a failover is timed
 * from it), and keeps proposing. */
static void on_feed(uv_timer_t *t) {
  (void)t;
  int leader = raft_state(&raft) == RAFT_LEADER;
  if (leader && !was_leader) {
    printf("leader %.0f\n", now_ms());
    fflush(stdout);
    first_commit_done = 0;
  }
  was_leader = leader;
  propose();
}

static void on_closed(struct raft *r) {
  (void)r;
  raft_uv_close(&io);
  raft_uv_tcp_close(&transport);
  uv_close((uv_handle_t *)&ticker, NULL);
  uv_close((uv_handle_t *)&feeder, NULL);
  uv_close((uv_handle_t *)&sigterm, NULL);
}

static void on_sigterm(uv_signal_t *s, int sig) {
  (void)sig;
  uv_signal_stop(s);
  uv_timer_stop(&ticker);
  uv_timer_stop(&feeder);
  raft_close(&raft, on_closed);
}

int main(int argc, char **argv) {
  if (argc != 10) {
    fprintf(stderr, "usage: raft_node ID DIR PORT1 PORT2 PORT3 ENTRY_BYTES IN_FLIGHT ELECTION_MS HEARTBEAT_MS\n");
    return 2;
  }
  raft_id id = strtoull(argv[1], NULL, 10);
  const char *dir = argv[2];
  char addresses[3][64];
  for (int i = 0; i < 3; ++i)
    snprintf(addresses[i], sizeof addresses[i], "127.0.0.1:%s", argv[3 + i]);
  entry_bytes = strtoul(argv[6], NULL, 10);
  in_flight_max = (unsigned)strtoul(argv[7], NULL, 10);
  unsigned election_ms = (unsigned)strtoul(argv[8], NULL, 10);
  unsigned heartbeat_ms = (unsigned)strtoul(argv[9], NULL, 10);
  signal(SIGPIPE, SIG_IGN);

  uv_loop_init(&loop);
  int rv = raft_uv_tcp_init(&transport, &loop);
  if (rv == 0)
    rv = raft_uv_init(&io, &loop, dir, &transport);
  if (rv != 0) {
    fprintf(stderr, "raft_uv_init: %s\n", raft_strerror(rv));
    return 1;
  }
  fsm.version = 1;
  fsm.apply = fsm_apply;
  fsm.snapshot = fsm_snapshot;
  fsm.restore = fsm_restore;
  if ((rv = raft_init(&raft, &io, &fsm, id, addresses[id - 1])) != 0) {
    fprintf(stderr, "raft_init: %s\n", raft_strerror(rv));
    return 1;
  }
  raft_set_election_timeout(&raft, election_ms);
  raft_set_heartbeat_timeout(&raft, heartbeat_ms);
  raft_set_pre_vote(&raft, true);
  raft_set_snapshot_threshold(&raft, 4096);  /* ~64 MB of log at 16 KB entries */
  raft_set_snapshot_trailing(&raft, 1024);
  struct raft_configuration conf;
  raft_configuration_init(&conf);
  for (int i = 0; i < 3; ++i)
    raft_configuration_add(&conf, (raft_id)(i + 1), addresses[i], RAFT_VOTER);
  rv = raft_bootstrap(&raft, &conf);
  if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
    fprintf(stderr, "raft_bootstrap: %s\n", raft_strerror(rv));
    return 1;
  }
  raft_configuration_close(&conf);
  if ((rv = raft_start(&raft)) != 0) {
    fprintf(stderr, "raft_start: %s\n", raft_errmsg(&raft));
    return 1;
  }
  uv_timer_init(&loop, &ticker);
  uv_timer_start(&ticker, on_tick, 1000, 1000);
  uv_timer_init(&loop, &feeder);
  uv_timer_start(&feeder, on_feed, 1, 1);
  uv_signal_init(&loop, &sigterm);
  uv_signal_start(&sigterm, on_sigterm, SIGTERM);
  printf("started %.0f\n", now_ms());
  fflush(stdout);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return 0;
}
