//! The consumer's end of the probe: [`Events`] reads the kernel ring buffer on the
//! consumer's own thread.
//!
//! There is no reader thread and no queue between reading and evaluating. Each
//! call that finds no event ready reads up to [`BATCH`] records from the ring
//! buffer, decodes and enriches them, and hands them out one at a time, in order.
//! Two threads with a queue between them cost, per event, a cross-thread hand-off
//! (a futex wake and a context switch when the consumer waited) and frees on the
//! other thread of everything the reader allocated (glibc's per-thread caches turn
//! that into arena work: `_int_malloc`/`_int_free` were 15 % of all CPU under a
//! flood of write-opens). One thread keeps the allocations thread-local and the
//! data cache-hot, and the kernel's ring buffer (`engine.ring_mib`) is the only
//! buffer: when the consumer falls behind, records wait there, and what does not
//! fit is dropped in the kernel and counted per kind (`KindStats::dropped`).
//!
//! `Events` has the methods of `std::sync::mpsc::Receiver` (`recv`, `recv_timeout`,
//! `try_recv`, `iter`, `try_iter`, `for ev in events`). After
//! [`crate::Probe::stop`], what the ring buffer still holds and the events waiting
//! for container metadata are delivered, then the receiving methods report the
//! disconnection. It is `Send`: a consumer may run on any one thread.

use crate::{decode, enrich, ProbeCounters};
use aya::maps::{MapData, RingBuf};
use falco_learn_event::Event;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvError, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most records read from the ring buffer before the events are handed out.
pub const BATCH: usize = 256;

/// How often exited processes and the metadata of gone containers are swept
/// when the ring buffer is quiet.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A sweep that removes at least this many processes returns the freed memory to
/// the OS (at most once per sweep, i.e. per second or 4 096 records).
const TRIM_AFTER_SWEPT: usize = 256;

/// The probe's events, read on the caller's thread.
pub struct Events {
    inner: RefCell<Reader>,
}

/// What a read of the ring buffer found.
enum Fill {
    /// Events are ready.
    Ready,
    /// None before the deadline.
    Timeout,
    /// The probe stopped and everything was delivered.
    Closed,
}

struct Reader {
    ring: RingBuf<MapData>,
    enricher: enrich::Enricher,
    stop: Arc<AtomicBool>,
    counters: Arc<ProbeCounters>,
    /// Longest sleep in `poll` while nothing arrives (the kernel wakes the reader
    /// earlier when an eighth of the ring is full).
    poll_ms: i32,
    ready: VecDeque<Event>,
    /// The kernel's verdict cache of opens, until it is seen off (then logged once).
    verdicts: Option<Arc<crate::filter::VerdictGen>>,
    since_sweep: u64,
    last_sweep: Instant,
    done: bool,
}

impl Events {
    pub(crate) fn new(
        ring: RingBuf<MapData>,
        enricher: enrich::Enricher,
        stop: Arc<AtomicBool>,
        counters: Arc<ProbeCounters>,
        poll_ms: i32,
    ) -> Events {
        Events {
            inner: RefCell::new(Reader {
                ring,
                enricher,
                stop,
                counters,
                poll_ms,
                ready: VecDeque::with_capacity(BATCH),
                verdicts: None,
                since_sweep: 0,
                last_sweep: Instant::now(),
                done: false,
            }),
        }
    }

    /// Log, once, when the kernel turns its verdict cache of opens off (checked at each
    /// sweep, about once a second).
    pub(crate) fn with_verdict_cache(self, gen: Arc<crate::filter::VerdictGen>) -> Events {
        self.inner.borrow_mut().verdicts = Some(gen);
        self
    }

    fn next(&self, deadline: Option<Instant>) -> Result<Event, Fill> {
        let mut r = self.inner.borrow_mut();
        loop {
            if let Some(ev) = r.ready.pop_front() {
                return Ok(ev);
            }
            // a flush of held events can make it thousands long: give that back once empty
            if r.ready.capacity() > 4 * BATCH {
                r.ready.shrink_to(BATCH);
            }
            match r.fill(deadline) {
                Fill::Ready => {}
                other => return Err(other),
            }
        }
    }

    /// The next event, waiting as long as it takes; an error once the probe has
    /// stopped and everything it read was delivered.
    pub fn recv(&self) -> Result<Event, RecvError> {
        self.next(None).map_err(|_| RecvError)
    }

    /// The next event, waiting at most `timeout`.
    /// A timeout too large for an `Instant` waits without a deadline, as
    /// `std::sync::mpsc::Receiver::recv_timeout` does (`Duration::MAX` must not panic).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        self.next(Instant::now().checked_add(timeout))
            .map_err(|f| match f {
                Fill::Closed => RecvTimeoutError::Disconnected,
                _ => RecvTimeoutError::Timeout,
            })
    }

    /// The next event if one is ready or in the ring buffer now.
    pub fn try_recv(&self) -> Result<Event, TryRecvError> {
        self.next(Some(Instant::now())).map_err(|f| match f {
            Fill::Closed => TryRecvError::Disconnected,
            _ => TryRecvError::Empty,
        })
    }

    /// Every event until the probe stops.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    /// The events there are now, without waiting.
    pub fn try_iter(&self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }
}

/// Every event until the probe stops (`for ev in events`).
pub struct IntoIter(Events);

impl Iterator for IntoIter {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        self.0.recv().ok()
    }
}

impl IntoIterator for Events {
    type Item = Event;
    type IntoIter = IntoIter;
    fn into_iter(self) -> IntoIter {
        IntoIter(self)
    }
}

impl Reader {
    /// Read records until some event is ready, the deadline passes (`None`: no
    /// deadline) or the probe has stopped and everything was delivered.
    fn fill(&mut self, deadline: Option<Instant>) -> Fill {
        loop {
            if self.done {
                return Fill::Closed;
            }
            let stopping = self.stop.load(Ordering::SeqCst);
            let n = self.drain();
            let now = Instant::now();
            self.housekeeping(n, now);
            if stopping && n < BATCH {
                // the ring buffer is empty: deliver what waits for metadata and end
                let ready = &mut self.ready;
                self.enricher.flush(&mut |ev| ready.push_back(ev));
                self.done = true;
                return if self.ready.is_empty() {
                    Fill::Closed
                } else {
                    Fill::Ready
                };
            }
            if !self.ready.is_empty() {
                return Fill::Ready;
            }
            if n > 0 {
                // records came that hold for metadata: read on, unless the deadline
                // passed (a container whose metadata is pending must not keep
                // `try_recv`/`recv_timeout` reading past it, up to `hold_max_events`);
                // once stopped, read to the end: an `Empty` then would end a consumer
                // that takes it for the end (`LiveSource` after its probe stopped)
                if !stopping && deadline.is_some_and(|d| now >= d) {
                    return Fill::Timeout;
                }
                continue;
            }
            let mut wait_ms = if self.enricher.held() > 0 {
                self.poll_ms.min(5)
            } else {
                self.poll_ms
            };
            if let Some(d) = deadline {
                if now >= d {
                    return Fill::Timeout;
                }
                let left = d.duration_since(now).as_micros().div_ceil(1000);
                wait_ms = wait_ms.min(i32::try_from(left).unwrap_or(i32::MAX));
            }
            let mut pfd = libc::pollfd {
                fd: self.ring.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, bounded timeout.
            unsafe { libc::poll(&mut pfd, 1, wait_ms) };
        }
    }

    /// Read at most [`BATCH`] records; returns how many were read.
    fn drain(&mut self) -> usize {
        let mut n = 0;
        let now = Instant::now();
        let ready = &mut self.ready;
        while n < BATCH {
            let Some(item) = self.ring.next() else { break };
            n += 1;
            match decode::decode(&item) {
                Ok(raw) => {
                    drop(item);
                    self.enricher.push(&raw, now, &mut |ev| ready.push_back(ev));
                }
                Err(e) => {
                    self.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("malformed probe record: {e}");
                }
            }
        }
        self.counters.records.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Sweep exited processes and gone containers now and then; release held events
    /// whose metadata arrived or whose hold ran out.
    fn housekeeping(&mut self, n: usize, now: Instant) {
        self.since_sweep += n as u64;
        if self.since_sweep > 4096 || now.saturating_duration_since(self.last_sweep) > SWEEP_EVERY {
            let removed = self.enricher.procs.sweep();
            self.enricher.sweep_containers();
            if removed >= TRIM_AFTER_SWEPT {
                crate::release_free_memory();
            }
            self.since_sweep = 0;
            self.last_sweep = now;
            if let Some(off) = self.verdicts.as_ref().and_then(|g| g.off()) {
                // off from the start: said then, with why
                if matches!(off, crate::filter::VerdictCacheOff::IoUringRename { .. }) {
                    tracing::warn!(
                        "the kernel's verdict cache of opens is off from now on: {off}; each open \
                     the filters drop walks its path (~300 ns) until the agent restarts"
                    );
                }
                self.verdicts = None;
            }
        }
        if self.enricher.held() > 0 {
            let ready = &mut self.ready;
            self.enricher.release(now, &mut |ev| ready.push_back(ev));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::hold_tests::{base, enricher, socket_record, ID};
    use crate::proctable::ProcessTable;
    use crate::runtime::RuntimeConfig;
    use aya::maps::Map;
    use std::os::fd::{FromRawFd, OwnedFd};

    /// An empty BPF ring buffer (root only: `None` with a loud skip elsewhere, a failure
    /// in CI).
    fn ring() -> Option<RingBuf<MapData>> {
        if !falco_learn_test_support::may_run("the reader's ring buffer tests", &[]) {
            return None;
        }
        // union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries
        let mut attr = [0u32; 32];
        attr[0] = 27; // BPF_MAP_TYPE_RINGBUF
        attr[3] = 4096;
        // SAFETY: BPF_MAP_CREATE with a zeroed attr of the right size
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                0, // BPF_MAP_CREATE
                attr.as_mut_ptr(),
                std::mem::size_of_val(&attr),
            )
        };
        assert!(
            fd >= 0,
            "BPF_MAP_CREATE of a ring buffer failed: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a new fd that nothing else owns
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let data = MapData::from_fd(fd).expect("the ring buffer's map data");
        Some(RingBuf::try_from(Map::RingBuf(data)).expect("a ring buffer"))
    }

    /// An enricher whose container process (pid 4242) waits for metadata from a
    /// runtime that accepts and never answers.
    fn pending_enricher(
        dir: &std::path::Path,
    ) -> (enrich::Enricher, std::os::unix::net::UnixListener) {
        let sock = dir.join("podman.sock");
        let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let en = enricher(RuntimeConfig {
            podman_sockets: vec![sock],
            hold: Duration::from_secs(30),
            lookup_timeout: Duration::from_secs(30),
            ..base()
        });
        (en, l)
    }

    fn events(enricher: enrich::Enricher) -> Option<(Events, Arc<AtomicBool>)> {
        let stop = Arc::new(AtomicBool::new(false));
        let ev = Events::new(
            ring()?,
            enricher,
            stop.clone(),
            Arc::new(ProbeCounters::default()),
            50,
        );
        Some((ev, stop))
    }

    /// `recv_timeout` takes any `Duration` as mpsc's does: one too large for an
    /// `Instant` waits without a deadline (it panicked: `Instant + Duration::MAX`).
    #[test]
    fn recv_timeout_with_an_unbounded_timeout_waits_until_the_stop() {
        let t = ProcessTable::new(vec![], 0);
        let Some((ev, stop)) = events(enrich::Enricher::new(t, 0)) else {
            return;
        };
        let s = stop.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            s.store(true, Ordering::SeqCst);
        });
        let t0 = Instant::now();
        assert_eq!(
            ev.recv_timeout(Duration::MAX).unwrap_err(),
            RecvTimeoutError::Disconnected
        );
        assert!(t0.elapsed() >= Duration::from_millis(90));
        h.join().unwrap();
    }

    /// Held events: `try_recv` and `recv_timeout` keep their deadline (no spin, no
    /// blocking); after the stop they are delivered, in order, then Disconnected.
    #[test]
    fn held_events_keep_deadlines_and_are_delivered_after_the_stop() {
        let d = tempfile::tempdir().unwrap();
        let (mut en, _l) = pending_enricher(d.path());
        let mut out = Vec::new();
        for _ in 0..3 {
            en.push(&socket_record(4242), Instant::now(), &mut |e| out.push(e));
        }
        assert_eq!((out.len(), en.held()), (0, 3));
        let Some((ev, stop)) = events(en) else { return };
        let t0 = Instant::now();
        assert_eq!(ev.try_recv().unwrap_err(), TryRecvError::Empty);
        assert!(
            t0.elapsed() < Duration::from_millis(20),
            "{:?}",
            t0.elapsed()
        );
        let t0 = Instant::now();
        assert_eq!(
            ev.recv_timeout(Duration::from_millis(60)).unwrap_err(),
            RecvTimeoutError::Timeout
        );
        let el = t0.elapsed();
        assert!(
            el >= Duration::from_millis(60) && el < Duration::from_millis(200),
            "{el:?}"
        );
        stop.store(true, Ordering::SeqCst);
        let got: Vec<Event> = ev.try_iter().collect();
        assert_eq!(got.len(), 3);
        assert!(got.windows(2).all(|w| w[0].num < w[1].num));
        assert_eq!(got[0].container.id, &ID[..12]);
        assert_eq!(ev.try_recv().unwrap_err(), TryRecvError::Disconnected);
        assert_eq!(ev.recv().unwrap_err(), RecvError);
    }
}
