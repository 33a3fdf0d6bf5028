//! Behaviour of supervised actors under kills, hangs, failures and load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::{
    Actor, ActorError, ActorHealth, ActorRef, ActorState, AskError, Context, KillError,
    RestartPolicy, SendError, Supervisor,
};

const HEARTBEAT: Duration = Duration::from_millis(20);
// Generous upper bound: waits return as soon as the condition holds, so this only matters
// when something is actually broken.
const PATIENCE: Duration = Duration::from_secs(10);

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn health(supervisor: &Supervisor, name: &str) -> ActorHealth {
    supervisor
        .snapshot()
        .into_iter()
        .find(|health| health.name == name)
        .expect("actor is in the snapshot")
}

/// Sets its flag when dropped, i.e. when the future owning it is aborted.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

enum TestMsg {
    Increment,
    Hang,
    HangThenReply(oneshot::Sender<usize>),
    Get(oneshot::Sender<usize>),
    Fail,
    SpawnForeverTask {
        started: Arc<AtomicBool>,
        dropped: Arc<AtomicBool>,
    },
}

/// Counts increments in a shared counter, which outlives instances like a database would.
struct TestActor {
    count: Arc<AtomicUsize>,
}

impl Actor for TestActor {
    type Msg = TestMsg;

    async fn handle(&mut self, msg: TestMsg, ctx: &Context<TestMsg>) -> Result<(), ActorError> {
        match msg {
            TestMsg::Increment => {
                self.count.fetch_add(1, Ordering::SeqCst);
            }
            TestMsg::Hang => std::future::pending::<()>().await,
            TestMsg::HangThenReply(reply) => {
                std::future::pending::<()>().await;
                let _ = reply.send(0);
            }
            TestMsg::Get(reply) => {
                let _ = reply.send(self.count.load(Ordering::SeqCst));
            }
            TestMsg::Fail => return Err(ActorError::failure("asked to fail")),
            TestMsg::SpawnForeverTask { started, dropped } => {
                ctx.spawn_tracked(async move {
                    let _flag = DropFlag(dropped);
                    started.store(true, Ordering::SeqCst);
                    std::future::pending::<()>().await;
                });
            }
        }
        Ok(())
    }

    fn observable_state(&self) -> serde_json::Value {
        serde_json::json!({ "count": self.count.load(Ordering::SeqCst) })
    }
}

fn spawn_test_actor(
    supervisor: &Supervisor,
    name: &str,
    capacity: usize,
    policy: RestartPolicy,
) -> (ActorRef<TestMsg>, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let factory_count = Arc::clone(&count);
    let actor_ref = supervisor.spawn(name, capacity, policy, move || TestActor {
        count: Arc::clone(&factory_count),
    });
    (actor_ref, count)
}

#[tokio::test]
async fn messages_queued_during_a_kill_are_handled_by_the_next_instance() {
    let root = Supervisor::new("root", HEARTBEAT);
    let group = Supervisor::new("pinning", HEARTBEAT);
    root.add_group(&group);
    let (counter, count) = spawn_test_actor(&group, "counter", 128, RestartPolicy::default());

    counter.send(TestMsg::Hang).await.expect("mailbox open");
    wait_until("the slow handler to run", || health(&root, "counter").busy).await;
    root.kill("counter").expect("kill reaches descendants");
    for _ in 0..100 {
        counter
            .try_send(TestMsg::Increment)
            .expect("mailbox has room");
    }

    wait_until("all increments", || count.load(Ordering::SeqCst) == 100).await;
    let counter_health = health(&root, "counter");
    assert_eq!(counter_health.supervisor, "pinning");
    assert_eq!(counter_health.restarts, 1);
    assert_eq!(counter_health.kills, 1);
    assert_eq!(
        counter_health.last_restart_reason.as_deref(),
        Some("killed")
    );
    wait_until("observable refresh", || {
        health(&root, "counter").observable["count"] == 100
    })
    .await;
    assert_eq!(
        root.kill("nobody"),
        Err(KillError::NotFound {
            name: "nobody".to_string()
        })
    );
}

#[tokio::test]
async fn a_hung_handler_is_killed_after_the_stuck_timeout() {
    let supervisor = Supervisor::new("root", HEARTBEAT);
    let policy = RestartPolicy {
        stuck_timeout: Duration::from_millis(200),
        ..RestartPolicy::default()
    };
    let (actor, count) = spawn_test_actor(&supervisor, "hanger", 16, policy);
    // Idle for longer than the stuck timeout: an actor without work in flight is never stuck.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(health(&supervisor, "hanger").restarts, 0);

    let hung_at = Instant::now();
    actor.send(TestMsg::Hang).await.expect("mailbox open");
    actor.send(TestMsg::Increment).await.expect("mailbox open");
    wait_until("the restarted instance", || {
        count.load(Ordering::SeqCst) == 1
    })
    .await;

    assert!(
        hung_at.elapsed() >= Duration::from_millis(200),
        "killed before the stuck timeout"
    );
    let hanger_health = health(&supervisor, "hanger");
    assert_eq!(hanger_health.restarts, 1);
    assert_eq!(hanger_health.stuck_kills, 1);
    assert_eq!(hanger_health.last_restart_reason.as_deref(), Some("stuck"));
    assert_eq!(actor.ask(TestMsg::Get).await, Ok(1));
}

#[tokio::test]
async fn failing_handlers_back_off_then_melt_down() {
    let supervisor = Supervisor::new("root", HEARTBEAT);
    let mut meltdown = supervisor.meltdown_signal();
    let policy = RestartPolicy {
        max_restarts: 3,
        window: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(80),
        stuck_timeout: Duration::from_secs(60),
    };
    let (actor, _) = spawn_test_actor(&supervisor, "flaky", 16, policy);
    let first_failure_at = Instant::now();
    for _ in 0..6 {
        actor.send(TestMsg::Fail).await.expect("mailbox open");
    }

    tokio::time::timeout(PATIENCE, meltdown.wait_for(Option::is_some))
        .await
        .expect("meltdown fired in time")
        .expect("supervisor alive");
    // Backoffs of 50, 80 (capped from 100) and 80 ms separate the four failures.
    assert!(
        first_failure_at.elapsed() >= Duration::from_millis(210),
        "restarts did not back off"
    );
    let flaky_health = health(&supervisor, "flaky");
    assert_eq!(flaky_health.state, ActorState::Failed);
    assert_eq!(flaky_health.restarts, 3);
    assert_eq!(
        flaky_health.last_restart_reason.as_deref(),
        Some("error: asked to fail")
    );
    assert!(
        meltdown
            .borrow()
            .as_deref()
            .is_some_and(|text| text.contains("root/flaky"))
    );
    assert_eq!(
        actor.try_send(TestMsg::Increment),
        Err(SendError::Closed {
            actor: "flaky".to_string()
        })
    );
}

#[tokio::test]
async fn a_full_mailbox_rejects_try_send_and_reports_its_depth() {
    let supervisor = Supervisor::new("root", HEARTBEAT);
    let (actor, _) = spawn_test_actor(&supervisor, "slow", 4, RestartPolicy::default());
    actor.send(TestMsg::Hang).await.expect("mailbox open");
    wait_until("the actor to be busy", || health(&supervisor, "slow").busy).await;

    for _ in 0..4 {
        actor.try_send(TestMsg::Increment).expect("room left");
    }
    assert_eq!(
        actor.try_send(TestMsg::Increment),
        Err(SendError::Full {
            actor: "slow".to_string()
        })
    );
    assert_eq!(actor.mailbox_depth(), 4);
    let slow_health = health(&supervisor, "slow");
    assert_eq!(
        (slow_health.mailbox_depth, slow_health.mailbox_capacity),
        (4, 4)
    );
    assert_eq!(slow_health.state, ActorState::Running);
}

#[tokio::test]
async fn ask_replies_times_out_and_fails_fast_when_the_actor_is_killed() {
    let supervisor = Supervisor::new("root", HEARTBEAT);
    let (actor, _) = spawn_test_actor(&supervisor, "asked", 16, RestartPolicy::default());
    actor.send(TestMsg::Increment).await.expect("mailbox open");
    assert_eq!(actor.ask(TestMsg::Get).await, Ok(1));
    assert_eq!(actor.ask_timeout(TestMsg::Get, PATIENCE).await, Ok(1));

    let pending_ask = tokio::spawn({
        let actor = actor.clone();
        async move { actor.ask(TestMsg::HangThenReply).await }
    });
    wait_until("the request to be in flight", || {
        health(&supervisor, "asked").busy
    })
    .await;
    let timeout = Duration::from_millis(50);
    assert!(matches!(
        actor.ask_timeout(TestMsg::Get, timeout).await,
        Err(AskError::Timeout { .. })
    ));

    supervisor.kill("asked").expect("actor running");
    let outcome = tokio::time::timeout(PATIENCE, pending_ask)
        .await
        .expect("ask did not hang")
        .expect("task ok");
    assert_eq!(
        outcome,
        Err(AskError::NoReply {
            actor: "asked".to_string()
        })
    );
    assert_eq!(actor.ask_timeout(TestMsg::Get, PATIENCE).await, Ok(1));
}

#[tokio::test]
async fn tracked_tasks_count_as_busy_and_die_with_their_instance() {
    let supervisor = Supervisor::new("root", HEARTBEAT);
    let (actor, _) = spawn_test_actor(&supervisor, "tracker", 16, RestartPolicy::default());
    let started = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    let msg = TestMsg::SpawnForeverTask {
        started: Arc::clone(&started),
        dropped: Arc::clone(&dropped),
    };
    actor.send(msg).await.expect("mailbox open");

    wait_until("the tracked task", || started.load(Ordering::SeqCst)).await;
    assert!(
        health(&supervisor, "tracker").busy,
        "a running tracked task is busy work"
    );
    assert!(!dropped.load(Ordering::SeqCst));
    supervisor.kill("tracker").expect("actor running");
    wait_until("the tracked task to be aborted", || {
        dropped.load(Ordering::SeqCst)
    })
    .await;
    wait_until("the restart", || {
        health(&supervisor, "tracker").state == ActorState::Running
    })
    .await;
    assert!(
        !health(&supervisor, "tracker").busy,
        "the new instance inherits no busy work"
    );
}

#[tokio::test]
async fn shutdown_stops_every_actor_in_the_tree() {
    let root = Supervisor::new("root", HEARTBEAT);
    let group = Supervisor::new("group", HEARTBEAT);
    root.add_group(&group);
    let (top, _) = spawn_test_actor(&root, "top", 4, RestartPolicy::default());
    let (nested, _) = spawn_test_actor(&group, "nested", 4, RestartPolicy::default());
    nested.send(TestMsg::Hang).await.expect("mailbox open");

    root.shutdown().await;
    assert!(
        root.snapshot()
            .iter()
            .all(|health| health.state == ActorState::Stopped)
    );
    assert_eq!(root.snapshot().len(), 2);
    assert!(matches!(
        top.send(TestMsg::Increment).await,
        Err(SendError::Closed { .. })
    ));
    assert!(matches!(
        nested.try_send(TestMsg::Increment),
        Err(SendError::Closed { .. })
    ));
    assert_eq!(
        root.kill("top"),
        Err(KillError::NotRunning {
            name: "top".to_string()
        })
    );
}

/// Runs each started job as a tracked task and shows how many are running.
struct JobRunner {
    running: Arc<AtomicUsize>,
}

impl Actor for JobRunner {
    type Msg = oneshot::Receiver<()>;

    async fn handle(&mut self, finish: oneshot::Receiver<()>, ctx: &Context<Self::Msg>) -> Result<(), ActorError> {
        self.running.fetch_add(1, Ordering::SeqCst);
        let running = Arc::clone(&self.running);
        ctx.spawn_tracked(async move {
            let _ = finish.await;
            running.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(())
    }

    fn observable_state(&self) -> serde_json::Value {
        serde_json::json!({ "running": self.running.load(Ordering::SeqCst) })
    }
}

#[tokio::test]
async fn observable_state_follows_tracked_tasks_without_new_messages() {
    let root = Supervisor::new("root", HEARTBEAT);
    let actor = root.spawn("jobs", 8, RestartPolicy::default(), || JobRunner { running: Arc::new(AtomicUsize::new(0)) });
    let (finish, finished) = oneshot::channel();
    actor.send(finished).await.expect("send");
    wait_until("the job shows as running", || health(&root, "jobs").observable["running"] == 1).await;
    // No message follows: the snapshot must catch up on the task's end by itself.
    finish.send(()).expect("job still waiting");
    wait_until("the job shows as done", || health(&root, "jobs").observable["running"] == 0).await;
}
