//! The actor contract, the context handed to handlers, and the loop that runs one instance.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::MissedTickBehavior;

use crate::mailbox::ActorRef;

/// How an actor instance ends, modelled on exit codes: the supervisor matches on it to
/// decide between restarting and stopping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActorError {
    /// Something went wrong; the supervisor restarts the actor (subject to its policy).
    #[error("actor failed: {0}")]
    Failure(String),
    /// The actor is done for good: it is marked stopped and its mailbox closed.
    #[error("actor stopped")]
    Stop,
}

impl ActorError {
    /// Builds a [`ActorError::Failure`] from anything printable, for use with `map_err`.
    pub fn failure(error: impl std::fmt::Display) -> Self {
        Self::Failure(error.to_string())
    }
}

/// A unit of state driven by messages, built (and rebuilt) by a supervisor's factory.
pub trait Actor: Send + 'static {
    /// The message type accepted by the actor's mailbox.
    type Msg: Send + 'static;

    /// Called once per instance before messages are handled (also after each restart).
    fn started(
        &mut self,
        _ctx: &Context<Self::Msg>,
    ) -> impl Future<Output = Result<(), ActorError>> + Send {
        async { Ok(()) }
    }

    /// Handles one message. Returning Err makes the supervisor restart the actor.
    fn handle(
        &mut self,
        msg: Self::Msg,
        ctx: &Context<Self::Msg>,
    ) -> impl Future<Output = Result<(), ActorError>> + Send;

    /// Period of [`Actor::tick`], read once per instance; `None` disables ticking.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Periodic tick, so actors run timers without spawning extra tasks.
    fn tick(
        &mut self,
        _ctx: &Context<Self::Msg>,
    ) -> impl Future<Output = Result<(), ActorError>> + Send {
        async { Ok(()) }
    }

    /// A cheap JSON snapshot of the actor's state, shown in /health/actors.
    ///
    /// Returning `Null` leaves whatever [`Context::set_observable`] stored untouched.
    fn observable_state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// Liveness counters of one instance, shared with the supervisor so it can judge a stuck
/// actor without messaging it.
#[derive(Debug)]
pub(crate) struct Liveness {
    epoch: Instant,
    last_progress_micros: AtomicU64,
    in_flight: AtomicUsize,
    started: AtomicBool,
}

impl Liveness {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_progress_micros: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            started: AtomicBool::new(false),
        }
    }

    fn record_progress(&self) {
        let micros = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_progress_micros.store(micros, Ordering::Relaxed);
    }

    pub(crate) fn since_progress(&self) -> Duration {
        let last_progress =
            Duration::from_micros(self.last_progress_micros.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last_progress)
    }

    pub(crate) fn is_busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn has_started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }
}

/// Marks its instance busy while alive and records progress when dropped.
///
/// Aborting an instance drops the futures holding guards, so counters never leak busy.
#[derive(Debug)]
pub struct WorkGuard {
    liveness: Arc<Liveness>,
}

impl WorkGuard {
    fn new(liveness: Arc<Liveness>) -> Self {
        // The stuck clock starts when work starts, not when the actor last went idle.
        liveness.record_progress();
        liveness.in_flight.fetch_add(1, Ordering::Relaxed);
        Self { liveness }
    }

    /// Records progress from long work, which would otherwise be judged stuck.
    pub fn record_progress(&self) {
        self.liveness.record_progress();
    }
}

impl Drop for WorkGuard {
    fn drop(&mut self) {
        self.liveness.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.liveness.record_progress();
    }
}

/// What a handler may use besides its own state; one per instance.
pub struct Context<M> {
    myself: ActorRef<M>,
    liveness: Arc<Liveness>,
    observable: Arc<Mutex<serde_json::Value>>,
    // Dropping the set aborts every task in it, which ties tracked tasks to this instance.
    tracked_tasks: Mutex<JoinSet<()>>,
    // Signalled when a tracked task ends, so the run loop refreshes the observable snapshot:
    // state that tasks change (calls in flight) would otherwise read stale until the next
    // message.
    tracked_done: Arc<tokio::sync::Notify>,
}

impl<M> Context<M> {
    pub(crate) fn new(
        myself: ActorRef<M>,
        liveness: Arc<Liveness>,
        observable: Arc<Mutex<serde_json::Value>>,
    ) -> Self {
        Self {
            myself,
            liveness,
            observable,
            tracked_tasks: Mutex::new(JoinSet::new()),
            tracked_done: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Tells the supervisor the actor is still moving, resetting the stuck timer.
    pub fn record_progress(&self) {
        self.liveness.record_progress();
    }

    /// Returns a handle to this actor's own mailbox.
    pub fn myself(&self) -> ActorRef<M> {
        self.myself.clone()
    }

    /// Returns the actor's name.
    pub fn name(&self) -> &str {
        self.myself.name()
    }

    /// Marks the instance busy until the guard is dropped.
    pub fn work_guard(&self) -> WorkGuard {
        WorkGuard::new(Arc::clone(&self.liveness))
    }

    /// Replaces the observable snapshot, for actors that publish it outside the handler loop.
    pub fn set_observable(&self, snapshot: serde_json::Value) {
        *lock(&self.observable) = snapshot;
    }

    /// Spawns a task owned by this instance: it counts as busy work while it runs and is
    /// aborted when the instance ends, is killed or restarted.
    pub fn spawn_tracked<F>(&self, task: F) -> AbortHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let guard = self.work_guard();
        let mut tracked_tasks = lock(&self.tracked_tasks);
        // Reap finished tasks here so a long-lived instance does not accumulate results.
        while let Some(finished) = tracked_tasks.try_join_next() {
            if let Err(join_error) = finished
                && join_error.is_panic()
            {
                tracing::warn!(actor = %self.name(), "tracked task panicked");
            }
        }
        let done = Arc::clone(&self.tracked_done);
        tracked_tasks.spawn(async move {
            let _guard = guard;
            task.await;
            done.notify_one();
        })
    }

    /// Spawns a long-lived task owned by this instance that does NOT count as busy work: it
    /// is aborted with the instance, but waiting (e.g. on a channel) never makes the actor look
    /// stuck. Use it for loops that idle most of the time; use [`Context::spawn_tracked`] or a
    /// [`WorkGuard`] for bounded units of work whose hangs must be detected.
    pub fn spawn_background<F>(&self, task: F) -> AbortHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut tracked_tasks = lock(&self.tracked_tasks);
        tracked_tasks.spawn(task)
    }

    fn refresh_observable<A: Actor<Msg = M>>(&self, actor: &A) {
        let snapshot = actor.observable_state();
        if !snapshot.is_null() {
            self.set_observable(snapshot);
        }
    }
}

/// Locks a std mutex, ignoring poisoning: the guarded values stay consistent on panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs one instance until it fails, stops, or its task is aborted.
pub(crate) async fn run_instance<A: Actor>(
    mut actor: A,
    ctx: Context<A::Msg>,
    mailbox: Arc<tokio::sync::Mutex<mpsc::Receiver<A::Msg>>>,
) -> Result<(), ActorError> {
    // A predecessor that was just aborted may not be dropped yet; waiting for the lock is
    // what hands its queued messages over intact.
    let mut receiver = mailbox.lock_owned().await;
    {
        let _busy = ctx.work_guard();
        actor.started(&ctx).await?;
    }
    ctx.liveness.started.store(true, Ordering::Relaxed);
    ctx.refresh_observable(&actor);

    let mut ticker_opt = actor.tick_interval().map(|period| {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker
    });
    loop {
        let next_tick = async {
            match ticker_opt.as_mut() {
                Some(ticker) => {
                    ticker.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg_opt = receiver.recv() => {
                // Unreachable while the supervisor holds a sender, but ending is the right answer.
                let Some(msg) = msg_opt else { return Ok(()) };
                let _busy = ctx.work_guard();
                actor.handle(msg, &ctx).await?;
            }
            () = next_tick => {
                let _busy = ctx.work_guard();
                actor.tick(&ctx).await?;
            }
            () = ctx.tracked_done.notified() => {}
        }
        ctx.refresh_observable(&actor);
    }
}
