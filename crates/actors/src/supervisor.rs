//! Supervisors: restart policies, heartbeats and health snapshots.
//!
//! Why not ractor: a ractor mailbox belongs to the actor instance and dies with it, so every
//! message queued at a crash or kill is lost, and callers must re-resolve the actor. Here the
//! supervisor owns each mailbox; instances only borrow the receiver (through an async mutex),
//! so a restart keeps the same [`ActorRef`] and every queued message. Ractor also reports only
//! failures and terminations: progress-based stuck detection, restart budgets and observable
//! snapshots would have to be layered on top anyway.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinHandle};
use tracing::Instrument;

use crate::actor::{Actor, ActorError, Context, Liveness, lock, run_instance};
use crate::mailbox::ActorRef;

/// When and how fast a supervisor restarts a child, and when it gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts tolerated within `window`; one more marks the child failed (meltdown).
    pub max_restarts: u32,
    /// Sliding window over which restarts are counted.
    pub window: Duration,
    /// Delay before the first restart in a window; doubles with each further one.
    pub backoff_initial: Duration,
    /// Upper bound of the restart delay.
    pub backoff_max: Duration,
    /// A busy actor without progress for this long is killed and restarted.
    pub stuck_timeout: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 10,
            window: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            stuck_timeout: Duration::from_secs(60),
        }
    }
}

impl RestartPolicy {
    fn backoff(&self, failures_in_window: usize) -> Duration {
        let doublings = u32::try_from(failures_in_window.saturating_sub(1)).unwrap_or(u32::MAX);
        let factor = 2u32.saturating_pow(doublings);
        self.backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// Lifecycle state of a supervised actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorState {
    /// An instance exists but its `started` hook has not finished.
    Starting,
    /// An instance is handling messages.
    Running,
    /// The instance is gone and a new one is scheduled after backoff.
    Restarting,
    /// The restart budget is exhausted; the actor stays down and its mailbox is closed.
    Failed,
    /// The actor stopped on purpose or its supervisor shut down.
    Stopped,
}

/// Health of one supervised actor, as served by /health/actors.
#[derive(Debug, Clone, Serialize)]
pub struct ActorHealth {
    /// Actor name.
    pub name: String,
    /// Name of the supervisor owning the actor.
    pub supervisor: String,
    /// Lifecycle state.
    pub state: ActorState,
    /// Restarts for any reason since the actor was spawned.
    pub restarts: u64,
    /// Restarts caused by [`Supervisor::kill`].
    pub kills: u64,
    /// Restarts caused by stuck detection.
    pub stuck_kills: u64,
    /// Why the actor last restarted (or failed).
    pub last_restart_reason: Option<String>,
    /// Time since the current instance last made progress.
    pub seconds_since_progress: f64,
    /// Messages waiting in the mailbox.
    pub mailbox_depth: usize,
    /// Mailbox bound.
    pub mailbox_capacity: usize,
    /// Whether the actor has work in flight.
    pub busy: bool,
    /// The actor's own snapshot.
    pub observable: serde_json::Value,
}

/// Why [`Supervisor::kill`] did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KillError {
    /// No actor with that name under this supervisor or its groups.
    #[error("no actor named {name}")]
    NotFound {
        /// The requested name.
        name: String,
    },
    /// The actor has no live instance (restarting, failed or stopped).
    #[error("actor {name} is not running")]
    NotRunning {
        /// The requested name.
        name: String,
    },
}

/// Why an instance went away; decides whether it counts against the restart budget.
enum RestartCause {
    Killed,
    Stuck,
    Failed(String),
    Panicked,
}

impl fmt::Display for RestartCause {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Killed => formatter.write_str("killed"),
            Self::Stuck => formatter.write_str("stuck"),
            Self::Failed(message) => write!(formatter, "error: {message}"),
            Self::Panicked => formatter.write_str("panicked"),
        }
    }
}

type InstanceHandle = JoinHandle<Result<(), ActorError>>;
type InstanceOutput = Result<Result<(), ActorError>, JoinError>;

/// The typed half of a child, hidden behind a trait so children of any actor type share a list.
trait ChildRunner: Send {
    /// Spawns a fresh instance, or returns `None` once the mailbox is closed.
    fn start(&self) -> Option<(InstanceHandle, Arc<Liveness>)>;
    fn mailbox_depth(&self) -> usize;
    fn mailbox_capacity(&self) -> usize;
    /// Drops the supervisor's receiver so senders get `Closed` instead of waiting forever.
    fn close_mailbox(&mut self);
}

struct TypedRunner<A: Actor> {
    factory: Arc<dyn Fn() -> A + Send + Sync>,
    actor_ref: ActorRef<A::Msg>,
    mailbox_opt: Option<Arc<tokio::sync::Mutex<mpsc::Receiver<A::Msg>>>>,
    observable: Arc<Mutex<serde_json::Value>>,
}

impl<A: Actor> ChildRunner for TypedRunner<A> {
    fn start(&self) -> Option<(InstanceHandle, Arc<Liveness>)> {
        let mailbox = Arc::clone(self.mailbox_opt.as_ref()?);
        let liveness = Arc::new(Liveness::new());
        let ctx = Context::new(
            self.actor_ref.clone(),
            Arc::clone(&liveness),
            Arc::clone(&self.observable),
        );
        let factory = Arc::clone(&self.factory);
        let span = tracing::info_span!("actor", name = %self.actor_ref.name());
        // The factory runs inside the task so that a panicking factory is just another panic.
        let handle = tokio::spawn(
            async move { run_instance(factory(), ctx, mailbox).await }.instrument(span),
        );
        Some((handle, liveness))
    }

    fn mailbox_depth(&self) -> usize {
        self.actor_ref.mailbox_depth()
    }

    fn mailbox_capacity(&self) -> usize {
        self.actor_ref.mailbox_capacity()
    }

    fn close_mailbox(&mut self) {
        self.mailbox_opt = None;
    }
}

struct Child {
    name: String,
    policy: RestartPolicy,
    runner: Box<dyn ChildRunner>,
    observable: Arc<Mutex<serde_json::Value>>,
    state: ActorState,
    restart_at: Instant,
    handle_opt: Option<InstanceHandle>,
    // Kept after the instance ends so snapshots still show its last progress.
    liveness: Arc<Liveness>,
    restarts: u64,
    kills: u64,
    stuck_kills: u64,
    last_restart_reason: Option<String>,
    recent_failures: VecDeque<Instant>,
}

impl Child {
    fn start_instance(&mut self) {
        match self.runner.start() {
            Some((handle, liveness)) => {
                self.handle_opt = Some(handle);
                self.liveness = liveness;
                self.state = ActorState::Running;
            }
            None => self.state = ActorState::Stopped,
        }
    }

    fn abort_instance(&mut self) -> Option<InstanceHandle> {
        let handle = self.handle_opt.take()?;
        handle.abort();
        Some(handle)
    }

    /// Advances the child by one heartbeat; returns a meltdown description if it just failed.
    fn check(&mut self, supervisor: &str, now: Instant) -> Option<String> {
        match self.state {
            ActorState::Restarting if now >= self.restart_at => {
                tracing::info!(supervisor, actor = %self.name, "starting new actor instance");
                self.start_instance();
                None
            }
            ActorState::Running => {
                if let Some(output) = self.take_output() {
                    return self.on_exit(output, supervisor, now);
                }
                if self.liveness.is_busy()
                    && self.liveness.since_progress() > self.policy.stuck_timeout
                {
                    tracing::warn!(supervisor, actor = %self.name, stuck_timeout = ?self.policy.stuck_timeout, "killing stuck actor");
                    self.abort_instance();
                    self.stuck_kills += 1;
                    return self.restart(RestartCause::Stuck, supervisor, now);
                }
                None
            }
            _ => None,
        }
    }

    fn take_output(&mut self) -> Option<InstanceOutput> {
        if !self.handle_opt.as_ref()?.is_finished() {
            return None;
        }
        self.handle_opt.take()?.now_or_never()
    }

    fn on_exit(
        &mut self,
        output: InstanceOutput,
        supervisor: &str,
        now: Instant,
    ) -> Option<String> {
        let cause = match output {
            Ok(Ok(())) | Ok(Err(ActorError::Stop)) => {
                tracing::info!(supervisor, actor = %self.name, "actor stopped");
                self.state = ActorState::Stopped;
                self.runner.close_mailbox();
                return None;
            }
            Ok(Err(ActorError::Failure(message))) => RestartCause::Failed(message),
            Err(join_error) if join_error.is_panic() => RestartCause::Panicked,
            // Aborted by someone other than kill(); treat it like a kill.
            Err(_) => RestartCause::Killed,
        };
        self.restart(cause, supervisor, now)
    }

    fn restart(&mut self, cause: RestartCause, supervisor: &str, now: Instant) -> Option<String> {
        let reason = cause.to_string();
        let mut delay = Duration::ZERO;
        // Operator kills (chaos testing) say nothing about the actor's health, so they do not
        // spend its restart budget.
        if !matches!(cause, RestartCause::Killed) {
            while let Some(oldest) = self.recent_failures.front() {
                if now.duration_since(*oldest) <= self.policy.window {
                    break;
                }
                self.recent_failures.pop_front();
            }
            self.recent_failures.push_back(now);
            let failures = self.recent_failures.len();
            if failures > self.policy.max_restarts as usize {
                tracing::error!(supervisor, actor = %self.name, failures, reason = %reason, "actor melted down, giving up");
                self.state = ActorState::Failed;
                self.runner.close_mailbox();
                let meltdown = format!(
                    "actor {supervisor}/{} failed {failures} times within {:?}, last: {reason}",
                    self.name, self.policy.window
                );
                self.last_restart_reason = Some(reason);
                return Some(meltdown);
            }
            delay = self.policy.backoff(failures);
        }
        tracing::warn!(supervisor, actor = %self.name, reason = %reason, ?delay, "restarting actor");
        self.restarts += 1;
        self.last_restart_reason = Some(reason);
        self.state = ActorState::Restarting;
        self.restart_at = now + delay;
        None
    }

    fn health(&self, supervisor: &str) -> ActorHealth {
        let state = match self.state {
            ActorState::Running if !self.liveness.has_started() => ActorState::Starting,
            other => other,
        };
        ActorHealth {
            name: self.name.clone(),
            supervisor: supervisor.to_string(),
            state,
            restarts: self.restarts,
            kills: self.kills,
            stuck_kills: self.stuck_kills,
            last_restart_reason: self.last_restart_reason.clone(),
            seconds_since_progress: self.liveness.since_progress().as_secs_f64(),
            mailbox_depth: self.runner.mailbox_depth(),
            mailbox_capacity: self.runner.mailbox_capacity(),
            busy: state == ActorState::Running && self.liveness.is_busy(),
            observable: lock(&self.observable).clone(),
        }
    }
}

struct SupervisorInner {
    name: String,
    heartbeat_interval: Duration,
    children: Mutex<Vec<Child>>,
    groups: Mutex<Vec<Supervisor>>,
    parents: Mutex<Vec<Weak<SupervisorInner>>>,
    meltdown_tx: watch::Sender<Option<String>>,
    monitor_opt: Mutex<Option<JoinHandle<()>>>,
}

impl SupervisorInner {
    fn heartbeat(&self) {
        let now = Instant::now();
        let meltdowns: Vec<String> = lock(&self.children)
            .iter_mut()
            .filter_map(|child| child.check(&self.name, now))
            .collect();
        for meltdown in meltdowns {
            self.fire_meltdown(&meltdown);
        }
    }

    /// Publishes the first meltdown here and in every ancestor, so the root sees any of them.
    fn fire_meltdown(&self, meltdown: &str) {
        self.meltdown_tx.send_if_modified(|current| {
            let is_first = current.is_none();
            if is_first {
                *current = Some(meltdown.to_string());
            }
            is_first
        });
        let parents: Vec<_> = lock(&self.parents)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for parent in parents {
            parent.fire_meltdown(meltdown);
        }
    }
}

impl Drop for SupervisorInner {
    fn drop(&mut self) {
        // Without a supervisor nobody would watch or stop the instances.
        if let Some(monitor) = lock(&self.monitor_opt).take() {
            monitor.abort();
        }
        for child in lock(&self.children).iter_mut() {
            child.abort_instance();
        }
    }
}

async fn monitor_loop(weak_inner: Weak<SupervisorInner>, heartbeat_interval: Duration) {
    let mut ticker = tokio::time::interval(heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = weak_inner.upgrade() else {
            return;
        };
        inner.heartbeat();
    }
}

/// Owns a set of actors (and nested groups), restarting them according to their policies.
///
/// Cloning yields another handle to the same supervisor.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<SupervisorInner>,
}

impl Supervisor {
    /// Creates a supervisor checking its children every `heartbeat_interval`.
    ///
    /// Must be called within a tokio runtime, which runs the monitor task.
    pub fn new(name: &str, heartbeat_interval: Duration) -> Self {
        let (meltdown_tx, _) = watch::channel(None);
        let inner = Arc::new(SupervisorInner {
            name: name.to_string(),
            heartbeat_interval,
            children: Mutex::new(Vec::new()),
            groups: Mutex::new(Vec::new()),
            parents: Mutex::new(Vec::new()),
            meltdown_tx,
            monitor_opt: Mutex::new(None),
        });
        // The monitor holds a weak reference so that dropping the last handle stops it.
        let monitor = tokio::spawn(monitor_loop(Arc::downgrade(&inner), heartbeat_interval));
        *lock(&inner.monitor_opt) = Some(monitor);
        Self { inner }
    }

    /// Returns the supervisor's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Spawns an actor built by `factory` with a mailbox of `mailbox_capacity` messages.
    ///
    /// The factory is called again for each restart; the returned handle stays valid
    /// throughout. Names should be unique across the supervision tree.
    pub fn spawn<A: Actor>(
        &self,
        name: &str,
        mailbox_capacity: usize,
        policy: RestartPolicy,
        factory: impl Fn() -> A + Send + Sync + 'static,
    ) -> ActorRef<A::Msg> {
        // tokio panics on a zero capacity; a one-slot mailbox is the closest sane meaning.
        let (sender, receiver) = mpsc::channel(mailbox_capacity.max(1));
        let actor_ref = ActorRef::new(name, sender);
        let observable = Arc::new(Mutex::new(serde_json::Value::Null));
        let runner = TypedRunner::<A> {
            factory: Arc::new(factory),
            actor_ref: actor_ref.clone(),
            mailbox_opt: Some(Arc::new(tokio::sync::Mutex::new(receiver))),
            observable: Arc::clone(&observable),
        };
        let mut child = Child {
            name: name.to_string(),
            policy,
            runner: Box::new(runner),
            observable,
            state: ActorState::Starting,
            restart_at: Instant::now(),
            handle_opt: None,
            liveness: Arc::new(Liveness::new()),
            restarts: 0,
            kills: 0,
            stuck_kills: 0,
            last_restart_reason: None,
            recent_failures: VecDeque::new(),
        };
        child.start_instance();
        tracing::debug!(supervisor = %self.inner.name, actor = name, mailbox_capacity, "spawned actor");
        lock(&self.inner.children).push(child);
        actor_ref
    }

    /// Attaches `group` below this supervisor: snapshots, kills, meltdowns and shutdown
    /// reach it. The tree must not contain cycles.
    pub fn add_group(&self, group: &Supervisor) {
        lock(&group.inner.parents).push(Arc::downgrade(&self.inner));
        lock(&self.inner.groups).push(group.clone());
        let meltdown_opt = group.inner.meltdown_tx.borrow().clone();
        if let Some(meltdown) = meltdown_opt {
            self.inner.fire_meltdown(&meltdown);
        }
    }

    /// Chaos hook: aborts the named actor's current instance; the monitor restarts it with
    /// reason "killed", keeping its queued messages.
    pub fn kill(&self, name: &str) -> Result<(), KillError> {
        {
            let mut children = lock(&self.inner.children);
            if let Some(child) = children.iter_mut().find(|child| child.name == name) {
                if child.state != ActorState::Running || child.abort_instance().is_none() {
                    return Err(KillError::NotRunning {
                        name: name.to_string(),
                    });
                }
                tracing::warn!(supervisor = %self.inner.name, actor = name, "killing actor on request");
                child.kills += 1;
                child.restart(RestartCause::Killed, &self.inner.name, Instant::now());
                return Ok(());
            }
        }
        let groups = lock(&self.inner.groups).clone();
        for group in groups {
            match group.kill(name) {
                Err(KillError::NotFound { .. }) => continue,
                outcome => return outcome,
            }
        }
        Err(KillError::NotFound {
            name: name.to_string(),
        })
    }

    /// Returns the health of every actor in this supervisor and its groups.
    pub fn snapshot(&self) -> Vec<ActorHealth> {
        let mut healths: Vec<ActorHealth> = lock(&self.inner.children)
            .iter()
            .map(|child| child.health(&self.inner.name))
            .collect();
        let groups = lock(&self.inner.groups).clone();
        for group in groups {
            healths.extend(group.snapshot());
        }
        healths
    }

    /// Returns a receiver that turns `Some(description)` when any actor in the tree melts down.
    pub fn meltdown_signal(&self) -> watch::Receiver<Option<String>> {
        self.inner.meltdown_tx.subscribe()
    }

    /// Stops monitoring, aborts every instance in the tree and closes the mailboxes.
    ///
    /// Waits a few heartbeats for aborted instances to unwind, then gives up with a warning.
    pub async fn shutdown(&self) {
        if let Some(monitor) = lock(&self.inner.monitor_opt).take() {
            monitor.abort();
        }
        let groups = lock(&self.inner.groups).clone();
        for group in groups {
            Box::pin(group.shutdown()).await;
        }
        let handles: Vec<_> = lock(&self.inner.children)
            .iter_mut()
            .filter_map(|child| {
                child.state = ActorState::Stopped;
                child.runner.close_mailbox();
                child.abort_instance()
            })
            .collect();
        let grace = self
            .inner
            .heartbeat_interval
            .saturating_mul(10)
            .max(Duration::from_millis(100));
        if tokio::time::timeout(grace, futures::future::join_all(handles))
            .await
            .is_err()
        {
            tracing::warn!(supervisor = %self.inner.name, ?grace, "some actors did not stop in time");
        }
        tracing::info!(supervisor = %self.inner.name, "supervisor shut down");
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Supervisor")
            .field("name", &self.inner.name)
            .finish()
    }
}
