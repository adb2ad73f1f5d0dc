//! Progress on stderr, one style for every long job. On a terminal, a bar: visible bars share
//! one [`MultiProgress`], so a caller's outer bar (the lab's grid) and a run's bar stack cleanly.
//! Anywhere else — a log file, `nohup`, a SLURM job — indicatif draws nothing (and drops
//! `println`), which would leave an eleven-hour study silent; there a [`Bar`] writes plain
//! `tracing` lines instead: one every [`PLAIN_EVERY_PCT`] % of the work (at most one per
//! [`PLAIN_MIN_GAP`]), one at least every [`PLAIN_MAX_GAP`], and one at the end; each with the
//! rate since the previous line and the eta at that rate.
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The process's bar stack.
pub fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(MultiProgress::new)
}

/// Plain mode: a line per this many percent of the work…
pub const PLAIN_EVERY_PCT: u64 = 5;
/// …but not closer together than this…
pub const PLAIN_MIN_GAP: Duration = Duration::from_secs(30);
/// …and never further apart than this while the work moves.
pub const PLAIN_MAX_GAP: Duration = Duration::from_secs(600);

/// A progress bar (terminal), plain log lines (no terminal), or nothing (`visible` false:
/// tests, library callers that report their own way).
pub struct Bar {
    bar: ProgressBar,
    plain: Option<Mutex<Plain>>,
}

/// What plain mode remembers between lines.
#[derive(Default)]
struct Plain {
    /// The first position set and when: the rate counts only work done here (a resumed run
    /// starts at its checkpoint's step).
    origin: Option<(u64, Instant)>,
    /// The last position logged and when.
    last: Option<(u64, Instant)>,
    /// The furthest position set: parallel workers may report out of order, and the closing
    /// line must not read 999 of 1000.
    furthest: u64,
}

/// A bar of `len` steps named `name` (its `{prefix}`, and the label of its plain lines), drawn
/// with `template` (indicatif syntax), at `start` (work done before this call, such as a
/// resumed run's checkpoint step: plain lines count their rate from there): see [`Bar`].
pub fn bar(name: &str, start: u64, len: u64, visible: bool, template: &str) -> Bar {
    let terminal = std::io::stderr().is_terminal();
    make(name, (start, len), visible, terminal, template)
}

/// [`bar`], with whether stderr is a terminal given (tests choose plain mode with it).
fn make(
    name: &str,
    (start, len): (u64, u64),
    visible: bool,
    terminal: bool,
    template: &str,
) -> Bar {
    let bar = if visible && terminal {
        multi().add(ProgressBar::new(len))
    } else {
        // Hidden bars still keep position, length, prefix and message: plain lines read them.
        ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::hidden())
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(name.to_string());
    let bar = Bar {
        bar,
        plain: (visible && !terminal).then(|| Mutex::new(Plain::default())),
    };
    bar.set_position(start);
    bar
}

impl Bar {
    pub fn set_position(&self, pos: u64) {
        self.bar.set_position(pos);
        let Some(plain) = &self.plain else { return };
        // A poisoned lock only means another thread panicked mid-update: the numbers in it
        // are still usable for a progress line.
        let mut p = plain.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let origin = *p.origin.get_or_insert((pos, now));
        p.furthest = p.furthest.max(pos);
        let len = self.bar.length().unwrap_or(0);
        if due(p.last, origin, pos, len, now) {
            let since = span_start(p.last, origin, pos);
            p.last = Some((pos, now));
            tracing::info!("{}", self.plain_line(origin, since, pos, len, now));
        }
    }

    pub fn set_length(&self, len: u64) {
        self.bar.set_length(len);
    }

    pub fn set_message(&self, msg: impl Into<std::borrow::Cow<'static, str>>) {
        self.bar.set_message(msg);
    }

    pub fn set_prefix(&self, prefix: impl Into<std::borrow::Cow<'static, str>>) {
        self.bar.set_prefix(prefix);
    }

    /// A line above the bar on a terminal; a log line in plain mode; nothing when hidden.
    pub fn println(&self, line: impl AsRef<str>) {
        if self.plain.is_some() {
            tracing::info!("{}{}", self.label(), line.as_ref());
        } else {
            self.bar.println(line);
        }
    }

    /// Clears the bar and takes it off the stack; in plain mode, the closing line.
    pub fn finish(&self) {
        if let Some(plain) = &self.plain {
            let mut p = plain.lock().unwrap_or_else(|e| e.into_inner());
            let (pos, len) = (p.furthest, self.bar.length().unwrap_or(0));
            if let Some(origin) = p.origin
                && closing_due(p.last, origin, pos, len)
            {
                let now = Instant::now();
                let since = span_start(p.last, origin, pos);
                p.last = Some((pos, now));
                tracing::info!("{}", self.plain_line(origin, since, pos, len, now));
            }
        }
        self.bar.finish_and_clear();
        multi().remove(&self.bar);
    }

    fn label(&self) -> String {
        let prefix = self.bar.prefix();
        if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}: ")
        }
    }

    /// `origin` starts the elapsed time; `since` the span the rate (and so the eta) is taken
    /// over: the work since the previous line, so that a job paused or slowed for a while reads
    /// its present speed again at the next line.
    fn plain_line(
        &self,
        origin: (u64, Instant),
        since: (u64, Instant),
        pos: u64,
        len: u64,
        now: Instant,
    ) -> String {
        let rate = rate(since, pos, now);
        let msg = self.bar.message();
        let mut s = format!("{}{}", self.label(), position(pos, len));
        if let Some(r) = rate {
            s += &format!(", {}", per_unit(r));
            if let Some(eta) = (len > pos && r > 0.0).then(|| (len - pos) as f64 / r) {
                s += &format!(", eta {}", duration(eta));
            }
        }
        let elapsed = now.saturating_duration_since(origin.1).as_secs_f64();
        s += &format!(", {} elapsed", duration(elapsed));
        if !msg.is_empty() {
            s += &format!(" · {msg}");
        }
        s
    }
}

/// Whether plain mode writes a line at `pos` (see the module docs); the first position set
/// (a fresh or a resumed start) always gets one.
fn due(
    last: Option<(u64, Instant)>,
    origin: (u64, Instant),
    pos: u64,
    len: u64,
    now: Instant,
) -> bool {
    let Some((at, when)) = last else {
        // The first line: at the start once the length is known; a bar whose length comes
        // with its first progress (`data prepare`'s) would otherwise open with a bare "0".
        return len > 0 || pos != origin.0;
    };
    if pos == at {
        return false;
    }
    let gap = now.saturating_duration_since(when);
    let step = (len.saturating_mul(PLAIN_EVERY_PCT) / 100).max(1);
    (pos.saturating_sub(at) >= step && gap >= PLAIN_MIN_GAP) || gap >= PLAIN_MAX_GAP
}

/// Whether [`Bar::finish`] writes a closing line at `pos`: not when the last line already says
/// `pos`, nor (like [`due`]'s first line) for a bar that never learnt its length and never moved,
/// which would close with a bare "0".
fn closing_due(last: Option<(u64, Instant)>, origin: (u64, Instant), pos: u64, len: u64) -> bool {
    match last {
        Some((at, _)) => at != pos,
        None => len > 0 || pos != origin.0,
    }
}

/// Where the rate of a line at `pos` is measured from: the previous line, while the work has
/// moved on since; else the first position set.
fn span_start(last: Option<(u64, Instant)>, origin: (u64, Instant), pos: u64) -> (u64, Instant) {
    last.filter(|(at, _)| *at < pos).unwrap_or(origin)
}

/// Items a second since `origin`; none before any work or any time.
fn rate(origin: (u64, Instant), pos: u64, now: Instant) -> Option<f64> {
    let secs = now.saturating_duration_since(origin.1).as_secs_f64();
    let done = pos.saturating_sub(origin.0);
    (done > 0 && secs > 0.0).then(|| done as f64 / secs)
}

/// `1200/4000 (30 %)`, or `12` where the length is not known.
fn position(pos: u64, len: u64) -> String {
    match pos.saturating_mul(100).checked_div(len) {
        Some(pct) => format!("{pos}/{len} ({pct} %)"),
        None => format!("{pos}"),
    }
}

/// `2.39/s`, `41.0 s each` when an item takes longer than a second, `37 min 46 s each` when it
/// takes minutes (a grid's runs).
fn per_unit(rate: f64) -> String {
    match 1.0 / rate {
        _ if rate >= 1.0 => format!("{rate:.2}/s"),
        each if each < 60.0 => format!("{each:.1} s each"),
        each => format!("{} each", duration(each)),
    }
}

/// `45 s`, `12 min 3 s`, `7 h 24 min`.
fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_come_every_five_percent_but_not_too_often() {
        let t0 = Instant::now();
        let origin = (0, t0);
        let at = |s: u64| t0 + Duration::from_secs(s);
        // The start always gets a line; a resumed start too.
        assert!(due(None, origin, 0, 4000, t0));
        assert!(due(None, (1000, t0), 1000, 4000, t0));
        // Length not yet known: no opening line at 0, the first one at the first progress.
        assert!(!due(None, origin, 0, 0, t0));
        assert!(due(None, origin, 1, 0, t0));
        // 5 % of 4000 is 200 steps: 199 steps on is too early, 200 is due once 30 s passed.
        assert!(!due(Some((0, t0)), origin, 199, 4000, at(100)));
        assert!(due(Some((0, t0)), origin, 200, 4000, at(100)));
        assert!(!due(Some((0, t0)), origin, 200, 4000, at(29)));
        // Slow work still shows life every ten minutes.
        assert!(due(Some((0, t0)), origin, 1, 4000, at(600)));
        // No repeated line for an unchanged position.
        assert!(!due(Some((5, t0)), origin, 5, 4000, at(900)));
        // Short jobs (24 runs of a grid): every item counts.
        assert!(due(Some((3, t0)), origin, 4, 24, at(1800)));
        // Any length, however large, is safe.
        assert!(!due(Some((0, t0)), origin, 1, u64::MAX, at(31)));
    }

    #[test]
    fn a_closing_line_only_when_it_says_something_new() {
        let t0 = Instant::now();
        let origin = (0, t0);
        // Already said: no repeat. Moved since: the closing figure.
        assert!(!closing_due(Some((4000, t0)), origin, 4000, 4000));
        assert!(closing_due(Some((3900, t0)), origin, 4000, 4000));
        // Never logged: a bar with a length closes with its line, even at 0 …
        assert!(closing_due(None, origin, 0, 10));
        assert!(closing_due(None, origin, 3, 0));
        // … but one that never learnt its length and never moved writes nothing.
        assert!(!closing_due(None, origin, 0, 0));
        assert!(!closing_due(None, (7, t0), 7, 0));
    }

    #[test]
    fn plain_line_figures() {
        assert_eq!(position(1200, 4000), "1200/4000 (30 %)");
        assert_eq!(position(7, 0), "7");
        assert_eq!(per_unit(2.3936), "2.39/s");
        assert_eq!(per_unit(1.0 / 2.6), "2.6 s each");
        assert_eq!(per_unit(1.0 / 2266.2), "37 min 46 s each");
        assert_eq!(duration(45.4), "45 s");
        assert_eq!(duration(723.0), "12 min 3 s");
        assert_eq!(duration(26_640.0), "7 h 24 min");
        let t0 = Instant::now();
        assert_eq!(rate((1000, t0), 1000, t0 + Duration::from_secs(5)), None);
        assert_eq!(
            rate((1000, t0), 1500, t0 + Duration::from_secs(250)),
            Some(2.0)
        );
        // The rate of a line is that since the previous line, while the work moved on.
        let origin = (0, t0);
        let last = (800, t0 + Duration::from_secs(900));
        assert_eq!(span_start(Some(last), origin, 1000), last);
        assert_eq!(span_start(Some(last), origin, 800), origin);
        assert_eq!(span_start(None, origin, 1000), origin);
    }

    #[test]
    fn a_plain_bar_counts_its_rate_from_its_start() {
        let b = make("test", (1200, 4000), true, false, "{prefix} {pos}/{len}");
        let plain = b.plain.as_ref().expect("plain mode off a terminal");
        {
            let p = plain.lock().expect("lock");
            assert_eq!(p.origin.map(|(at, _)| at), Some(1200));
            // The start got its line (a resumed run says where it resumes).
            assert_eq!(p.last.map(|(at, _)| at), Some(1200));
        }
        b.set_position(1300);
        let p = plain.lock().expect("lock");
        assert_eq!((p.origin.map(|(at, _)| at), p.furthest), (Some(1200), 1300));
    }

    #[test]
    fn a_hidden_bar_keeps_its_state_and_writes_nothing() {
        let b = bar("test", 3, 10, false, "{prefix} {pos}/{len}");
        assert!(b.plain.is_none());
        assert_eq!(b.bar.position(), 3);
        b.set_position(4);
        b.set_message("loss 0.1");
        b.println("not shown");
        assert_eq!(b.bar.position(), 4);
        b.finish();
    }
}
