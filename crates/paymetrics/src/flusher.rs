//! The flusher: one background thread that turns the recorder's cells into snapshots and hands
//! them to the exporters, every flush interval or when asked.
//!
//! It is the only caller of exporters. Recording threads never wait for it: they touch atomics,
//! and queue messages into a bounded queue that drops (and counts) when full.

use std::{
    collections::VecDeque,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Condvar, Mutex, PoisonError, atomic::Ordering::Relaxed},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    clock::SharedClock,
    export::Exporter,
    message::Message,
    recorder::Inner,
    snapshot::{RecorderStats, Snapshot},
};

#[derive(Debug, Default)]
struct Control {
    requested: u64,
    completed: u64,
    /// Whether every exporter delivered everything in the latest completed flush.
    delivered: bool,
    shutdown: bool,
    stopped: bool,
}

/// When the flusher runs and how it may spread its sends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    pub(crate) interval: Duration,
    /// The part of the interval over which a regular flush's sends may be spread.
    pub(crate) pacing: f64,
    /// The bound on an explicit or final flush: its sends are spread over at most half of it.
    pub(crate) deadline: Duration,
}

impl Schedule {
    fn spread(&self, asked_for: bool) -> Duration {
        let spread = self.interval.mul_f64(self.pacing);
        if asked_for {
            spread.min(self.deadline / 2)
        } else {
            spread
        }
    }
}

/// State shared by the guard, its handles and the flusher thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) inner: Arc<Inner>,
    control: Mutex<Control>,
    wake: Condvar,
    done: Condvar,
    latest: Mutex<Option<Arc<Snapshot>>>,
    queue: Mutex<VecDeque<Message>>,
    queue_capacity: usize,
    pub(crate) clock: SharedClock,
}

impl Shared {
    pub(crate) fn new(inner: Arc<Inner>, queue_capacity: usize, clock: SharedClock) -> Self {
        Self {
            inner,
            control: Mutex::default(),
            wake: Condvar::new(),
            done: Condvar::new(),
            latest: Mutex::default(),
            queue: Mutex::default(),
            queue_capacity,
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a message for the next flush; `false` if the queue was full, a timestamped
    /// value is not finite or a timestamp is past `i64::MAX` seconds (each counted).
    pub(crate) fn send(&self, message: Message) -> bool {
        if let Message::Timestamped(m) = &message
            && !m.value.is_finite()
        {
            self.inner.stats.non_finite_dropped.fetch_add(1, Relaxed);
            return false;
        }
        let timestamp = match &message {
            Message::Timestamped(m) => Some(m.timestamp),
            Message::Event(e) => e.timestamp,
            Message::ServiceCheck(sc) => sc.timestamp,
        };
        if timestamp.is_some_and(|t| i64::try_from(t).is_err()) {
            self.inner.stats.invalid_dropped.fetch_add(1, Relaxed);
            return false;
        }
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.len() >= self.queue_capacity {
            self.inner.stats.messages_dropped.fetch_add(1, Relaxed);
            return false;
        }
        queue.push_back(message);
        true
    }

    /// The snapshot of the latest flush.
    pub(crate) fn latest(&self) -> Option<Arc<Snapshot>> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Asks for a flush and waits up to `timeout` for it; `true` once it is done and every
    /// exporter delivered everything.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let mut control = self.lock();
        if control.stopped {
            return false;
        }
        control.requested += 1;
        let ticket = control.requested;
        self.wake.notify_all();
        let (control, _) = self
            .done
            .wait_timeout_while(control, timeout, |c| c.completed < ticket && !c.stopped)
            .unwrap_or_else(PoisonError::into_inner);
        control.completed >= ticket && control.delivered
    }

    /// Asks for a final flush and waits up to `timeout` for the thread to stop: `None` if it
    /// did not stop in time, else whether the final flush was delivered.
    pub(crate) fn shutdown(&self, timeout: Duration) -> Option<bool> {
        let mut control = self.lock();
        control.shutdown = true;
        self.wake.notify_all();
        let (control, _) = self
            .done
            .wait_timeout_while(control, timeout, |c| !c.stopped)
            .unwrap_or_else(PoisonError::into_inner);
        control.stopped.then_some(control.delivered)
    }

    fn stats(&self) -> RecorderStats {
        let s = &self.inner.stats;
        RecorderStats {
            live_series: self.inner.live_series(),
            non_finite_dropped: s.non_finite_dropped.load(Relaxed),
            overflow_registrations: s.overflow_registrations.load(Relaxed),
            series_expired: s.series_expired.load(Relaxed),
            messages_dropped: s.messages_dropped.load(Relaxed),
            invalid_dropped: s.invalid_dropped.load(Relaxed),
        }
    }
}

/// Starts the flusher thread.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    mut exporters: Vec<Box<dyn Exporter>>,
    schedule: Schedule,
) -> std::io::Result<JoinHandle<()>> {
    let interval = schedule.interval;
    std::thread::Builder::new()
        .name("paymetrics-flusher".into())
        .spawn(move || {
            let mut last_flush = Instant::now();
            let mut next = last_flush + interval;
            loop {
                let mut control = shared.lock();
                loop {
                    let now = Instant::now();
                    if control.shutdown || control.requested > control.completed || now >= next {
                        break;
                    }
                    control = shared
                        .wake
                        .wait_timeout(control, next - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                let ticket = control.requested;
                let shutting_down = control.shutdown;
                let asked_for = shutting_down || control.requested > control.completed;
                drop(control);

                let now = Instant::now();
                let delivered = flush_once(
                    &shared,
                    &mut exporters,
                    now - last_flush,
                    schedule.spread(asked_for),
                );
                last_flush = now;
                next = now + interval;

                let mut control = shared.lock();
                control.completed = ticket;
                control.delivered = delivered;
                if shutting_down {
                    for exporter in &mut exporters {
                        guarded(exporter.as_mut(), |e| e.shutdown());
                    }
                    control.stopped = true;
                }
                shared.done.notify_all();
                if shutting_down {
                    return;
                }
            }
        })
}

/// One flush; `true` if every exporter delivered everything.
fn flush_once(
    shared: &Shared,
    exporters: &mut [Box<dyn Exporter>],
    interval: Duration,
    spread_over: Duration,
) -> bool {
    let series = shared.inner.collect();
    let messages: Vec<Message> = shared
        .queue
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain(..)
        .collect();
    let snapshot = Snapshot {
        taken_at: shared.clock.now(),
        interval,
        series,
        messages,
        stats: shared.stats(),
    };
    let mut delivered = true;
    for exporter in exporters.iter_mut() {
        delivered &= guarded(exporter.as_mut(), |e| {
            e.export_within(&snapshot, spread_over)
        })
        .unwrap_or(false);
    }
    shared.inner.expire_idle();
    *shared.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(snapshot));
    delivered
}

/// Runs an exporter call; a panicking exporter is logged and the flusher goes on (`None`).
fn guarded<T>(exporter: &mut dyn Exporter, call: impl FnOnce(&mut dyn Exporter) -> T) -> Option<T> {
    let result = catch_unwind(AssertUnwindSafe(|| call(exporter)));
    if result.is_err() {
        tracing::error!(target: "paymetrics", ?exporter, "an exporter panicked; its data for this flush is lost");
    }
    result.ok()
}
