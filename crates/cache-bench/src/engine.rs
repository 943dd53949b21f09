//! The client's event loop: each thread drives its share of the connections with one `mio` poll
//! (epoll, edge-triggered), keeps up to `depth` requests in flight on each, and writes the
//! replacements for every batch of replies in one `write`. Latency is measured per request from
//! the moment it was queued for writing to the moment its reply was read (one clock read per
//! `read`/batch, not per request), so the client costs about one `epoll_wait`, one `read` and one
//! `write` per batch of replies.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::hist::Histogram;
use crate::proto::{encode_get, encode_set, parse_reply, ErrorKind, Reply, SetTemplate};
use crate::workload::{Op, Workload};
use crate::Error;

/// Reply counters of one phase.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Replies to `get`.
    pub gets: u64,
    /// Replies to `set`.
    pub sets: u64,
    /// `get`s that found the key.
    pub hits: u64,
    /// `get`s that did not.
    pub misses: u64,
    /// `set`s answered `NOT_STORED`/`EXISTS`/`NOT_FOUND`.
    pub not_stored: u64,
    /// `ERROR` replies.
    pub errors: u64,
    /// `CLIENT_ERROR` replies.
    pub client_errors: u64,
    /// `SERVER_ERROR` replies.
    pub server_errors: u64,
}

impl Counters {
    /// Every reply counted.
    pub fn replies(&self) -> u64 {
        self.gets + self.sets
    }

    /// Replies that are failures: error replies and sets that did not store.
    pub fn failures(&self) -> u64 {
        self.not_stored + self.errors + self.client_errors + self.server_errors
    }

    fn add(&mut self, o: &Counters) {
        self.gets += o.gets;
        self.sets += o.sets;
        self.hits += o.hits;
        self.misses += o.misses;
        self.not_stored += o.not_stored;
        self.errors += o.errors;
        self.client_errors += o.client_errors;
        self.server_errors += o.server_errors;
    }
}

/// What one phase measured (merged over threads).
#[derive(Debug, Clone, Default)]
pub struct PhaseStats {
    /// Latency of every counted request, in nanoseconds.
    pub latency: Histogram,
    /// Reply counters.
    pub counters: Counters,
    /// Wall time of the measured part of the phase.
    pub elapsed: Duration,
}

impl PhaseStats {
    fn merge(&mut self, o: &PhaseStats) {
        self.latency.merge(&o.latency);
        self.counters.add(&o.counters);
        self.elapsed = self.elapsed.max(o.elapsed);
    }
}

/// When a phase ends.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// When every connection's workload is exhausted and answered (fills).
    Exhausted,
    /// Discard what happens before `measure_from`, stop at `end`.
    Time { measure_from: Instant, end: Instant },
}

/// One connection and its buffers.
pub struct Conn {
    id: usize,
    stream: TcpStream,
    wbuf: Vec<u8>,
    wpos: usize,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// Requests sent and not yet answered, oldest first: (is a get, queued at).
    inflight: VecDeque<(bool, Instant)>,
    /// What to send next.
    pub work: Workload,
    /// Requests kept in flight.
    pub depth: usize,
}

const READ_CHUNK: usize = 64 * 1024;

impl Conn {
    /// Connects (blocking) to `addr` and switches the socket to non-blocking, `TCP_NODELAY` mode.
    pub fn connect(id: usize, addr: std::net::SocketAddr) -> Result<Conn, Error> {
        let s =
            std::net::TcpStream::connect(addr).map_err(|source| Error::Connect { addr, source })?;
        s.set_nodelay(true)
            .map_err(|source| Error::Io { conn: id, source })?;
        s.set_nonblocking(true)
            .map_err(|source| Error::Io { conn: id, source })?;
        Ok(Conn {
            id,
            stream: TcpStream::from_std(s),
            wbuf: Vec::with_capacity(16 * 1024),
            wpos: 0,
            rbuf: vec![0; READ_CHUNK],
            rstart: 0,
            rend: 0,
            inflight: VecDeque::new(),
            work: Workload::Fill { next: 0, end: 0 },
            depth: 1,
        })
    }

    fn io_err(&self, source: io::Error) -> Error {
        Error::Io {
            conn: self.id,
            source,
        }
    }

    /// Queues requests until `depth` are in flight or the workload is exhausted.
    fn refill(&mut self, now: Instant, tpl: &SetTemplate) {
        while self.inflight.len() < self.depth {
            match self.work.next_op() {
                Some(Op::Get(k)) => {
                    encode_get(&mut self.wbuf, k);
                    self.inflight.push_back((true, now));
                }
                Some(Op::Set(k)) => {
                    encode_set(&mut self.wbuf, k, tpl);
                    self.inflight.push_back((false, now));
                }
                None => break,
            }
        }
    }

    /// Writes as much of the pending output as the socket takes.
    fn flush(&mut self) -> Result<(), Error> {
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(Error::Closed { conn: self.id }),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_err(e)),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        Ok(())
    }

    /// Reads what the socket has, accounts every complete reply and queues replacements.
    fn on_readable(&mut self, stats: &mut PhaseStats, tpl: &SetTemplate) -> Result<(), Error> {
        loop {
            if self.rend == self.rbuf.len() {
                if self.rstart > 0 {
                    self.rbuf.copy_within(self.rstart..self.rend, 0);
                    self.rend -= self.rstart;
                    self.rstart = 0;
                } else {
                    let n = self.rbuf.len() * 2;
                    self.rbuf.resize(n, 0);
                }
            }
            let space = self.rbuf.len() - self.rend;
            match self.stream.read(&mut self.rbuf[self.rend..]) {
                Ok(0) => return Err(Error::Closed { conn: self.id }),
                Ok(n) => {
                    self.rend += n;
                    let now = Instant::now();
                    self.account(now, stats)?;
                    self.refill(now, tpl);
                    // A short read drained the socket: epoll reports the next arrival anew.
                    if n < space {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_err(e)),
            }
        }
    }

    fn account(&mut self, now: Instant, stats: &mut PhaseStats) -> Result<(), Error> {
        let c = &mut stats.counters;
        while let Some((reply, used)) =
            parse_reply(&self.rbuf[self.rstart..self.rend]).map_err(|e| Error::Protocol {
                conn: self.id,
                source: e,
            })?
        {
            self.rstart += used;
            let Some((is_get, sent)) = self.inflight.pop_front() else {
                return Err(Error::Unsolicited { conn: self.id });
            };
            match (is_get, reply) {
                (true, Reply::Hit { .. }) => c.hits += 1,
                (true, Reply::Miss) => c.misses += 1,
                (false, Reply::Stored) => {}
                (false, Reply::NotStored) => c.not_stored += 1,
                (_, Reply::Error(ErrorKind::Error)) => c.errors += 1,
                (_, Reply::Error(ErrorKind::Client)) => c.client_errors += 1,
                (_, Reply::Error(ErrorKind::Server)) => c.server_errors += 1,
                (_, r) => {
                    return Err(Error::Mismatch {
                        conn: self.id,
                        get: is_get,
                        reply: format!("{r:?}"),
                    })
                }
            }
            if is_get {
                c.gets += 1;
            } else {
                c.sets += 1;
            }
            stats
                .latency
                .record(now.saturating_duration_since(sent).as_nanos() as u64);
        }
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        self.inflight.is_empty() && matches!(self.work, Workload::Fill { next, end } if next >= end)
    }
}

/// Drives `conns` on the calling thread until `until`; returns the connections (for a next phase)
/// and what was measured. Replies still in flight when a timed phase ends are dropped: the
/// connections must not be reused for another phase afterwards unless it is acceptable that their
/// first replies belong to old requests (the caller only ever runs a fill *before* a timed phase).
pub fn drive(
    mut conns: Vec<Conn>,
    until: Until,
    tpl: &SetTemplate,
) -> Result<(Vec<Conn>, PhaseStats), Error> {
    let mut poll = Poll::new().map_err(|source| Error::Io {
        conn: usize::MAX,
        source,
    })?;
    for (i, c) in conns.iter_mut().enumerate() {
        poll.registry()
            .register(
                &mut c.stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|source| Error::Io { conn: c.id, source })?;
    }
    let mut stats = PhaseStats::default();
    let start = Instant::now();
    let mut measuring_since = start;
    let mut measuring = matches!(until, Until::Exhausted);
    for c in conns.iter_mut() {
        c.refill(start, tpl);
        c.flush()?;
    }
    let mut events = Events::with_capacity(1024);
    let mut live = conns.iter().filter(|c| !c.finished()).count();
    loop {
        let timeout = match until {
            Until::Exhausted => {
                if live == 0 {
                    break;
                }
                Duration::from_millis(100)
            }
            Until::Time { measure_from, end } => {
                let now = Instant::now();
                if !measuring && now >= measure_from {
                    stats = PhaseStats::default();
                    measuring = true;
                    measuring_since = now;
                }
                if now >= end {
                    break;
                }
                let next = if measuring { end } else { measure_from };
                (next - now).min(Duration::from_millis(100))
            }
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::Io {
                conn: usize::MAX,
                source: e,
            });
        }
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            let was_finished = c.finished();
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.on_readable(&mut stats, tpl)?;
            }
            if c.wpos < c.wbuf.len() {
                c.flush()?;
            }
            if !was_finished && c.finished() {
                live -= 1;
            }
        }
    }
    stats.elapsed = measuring_since.elapsed();
    for c in conns.iter_mut() {
        poll.registry()
            .deregister(&mut c.stream)
            .map_err(|source| Error::Io { conn: c.id, source })?;
    }
    Ok((conns, stats))
}

/// Spreads `conns` round-robin over `threads` threads, runs [`drive`] on each, and merges.
pub fn drive_threads(
    conns: Vec<Conn>,
    threads: usize,
    until: Until,
    tpl: &SetTemplate,
) -> Result<(Vec<Conn>, PhaseStats), Error> {
    let threads = threads.clamp(1, conns.len().max(1));
    let mut groups: Vec<Vec<Conn>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, c) in conns.into_iter().enumerate() {
        groups[i % threads].push(c);
    }
    if threads == 1 {
        return drive(groups.pop().unwrap_or_default(), until, tpl);
    }
    let results: Vec<Result<(Vec<Conn>, PhaseStats), Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|g| s.spawn(move || drive(g, until, tpl)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .collect()
    });
    let mut all = Vec::new();
    let mut stats = PhaseStats::default();
    for r in results {
        let (conns, st) = r?;
        all.extend(conns);
        stats.merge(&st);
    }
    all.sort_by_key(|c| c.id);
    Ok((all, stats))
}
