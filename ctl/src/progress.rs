//! The upload progress bar of `add`: bytes sent, rate and time left, redrawn on stderr about
//! four times a second while stdout is a terminal.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::humanize::bytes as human;

/// A running bar; dropping it stops and clears it.
pub struct Progress {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing `sent` out of `total` bytes.
    pub fn start(sent: Arc<AtomicU64>, total: u64) -> Progress {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tick.tick() => draw(sent.load(Ordering::Relaxed), total, started.elapsed()),
                    _ = &mut rx => break,
                }
            }
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        });
        Progress { stop: Some(tx), task: Some(task) }
    }

    /// Stops and clears the bar.
    pub async fn finish(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn draw(sent: u64, total: u64, elapsed: Duration) {
    let line = render(sent, total, elapsed);
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{line}");
    let _ = err.flush();
}

/// One line of the bar: `[#####-----]  42% 1.2 GB / 2.9 GB  35 MB/s  ETA 48s`.
pub fn render(sent: u64, total: u64, elapsed: Duration) -> String {
    const WIDTH: u64 = 30;
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { sent as f64 / secs } else { 0.0 };
    let pct = if total > 0 { (sent.min(total) * 100) / total } else { 100 };
    let filled = if total > 0 { (sent.min(total) * WIDTH) / total } else { WIDTH };
    let bar: String = (0..WIDTH).map(|i| if i < filled { '#' } else { '-' }).collect();
    let eta = if rate > 0.0 && total > sent {
        format!("ETA {}s", ((total - sent) as f64 / rate).ceil() as u64)
    } else {
        "ETA -".to_string()
    };
    format!("[{bar}] {pct:>3}% {} / {}  {}/s  {eta}", human(sent), human(total), human(rate as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rate_and_eta() {
        let line = render(50 * 1_000_000, 100 * 1_000_000, Duration::from_secs(5));
        assert!(line.starts_with("[###############---------------]  50%"), "{line}");
        assert!(line.contains("/s"), "{line}");
        assert!(line.ends_with("ETA 5s"), "{line}");
        assert!(render(0, 0, Duration::ZERO).contains("100%"));
    }
}
