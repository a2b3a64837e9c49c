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
    shutdown: bool,
    stopped: bool,
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

    /// Queues a message for the next flush; `false` if the queue was full or a timestamped
    /// value is not finite (both counted).
    pub(crate) fn send(&self, message: Message) -> bool {
        if let Message::Timestamped(m) = &message
            && !m.value.is_finite()
        {
            self.inner.stats.non_finite_dropped.fetch_add(1, Relaxed);
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

    /// Asks for a flush and waits up to `timeout` for it; `true` once it is done.
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
        control.completed >= ticket
    }

    /// Asks for a final flush and waits up to `timeout` for the thread to stop.
    pub(crate) fn shutdown(&self, timeout: Duration) -> bool {
        let mut control = self.lock();
        control.shutdown = true;
        self.wake.notify_all();
        let (control, _) = self
            .done
            .wait_timeout_while(control, timeout, |c| !c.stopped)
            .unwrap_or_else(PoisonError::into_inner);
        control.stopped
    }

    fn stats(&self) -> RecorderStats {
        let s = &self.inner.stats;
        RecorderStats {
            live_series: self.inner.live_series(),
            non_finite_dropped: s.non_finite_dropped.load(Relaxed),
            overflow_registrations: s.overflow_registrations.load(Relaxed),
            series_expired: s.series_expired.load(Relaxed),
            messages_dropped: s.messages_dropped.load(Relaxed),
        }
    }
}

/// Starts the flusher thread.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    mut exporters: Vec<Box<dyn Exporter>>,
    interval: Duration,
) -> std::io::Result<JoinHandle<()>> {
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
                drop(control);

                let now = Instant::now();
                flush_once(&shared, &mut exporters, now - last_flush);
                last_flush = now;
                next = now + interval;

                let mut control = shared.lock();
                control.completed = ticket;
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

fn flush_once(shared: &Shared, exporters: &mut [Box<dyn Exporter>], interval: Duration) {
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
    for exporter in exporters.iter_mut() {
        guarded(exporter.as_mut(), |e| e.export(&snapshot));
    }
    shared.inner.expire_idle();
    *shared.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(snapshot));
}

/// Runs an exporter call; a panicking exporter is logged and the flusher goes on.
fn guarded(exporter: &mut dyn Exporter, call: impl FnOnce(&mut dyn Exporter)) {
    if catch_unwind(AssertUnwindSafe(|| call(exporter))).is_err() {
        tracing::error!(target: "paymetrics", ?exporter, "an exporter panicked; its data for this flush is lost");
    }
}
