//! Progress bars on stderr, one style for every long job. Visible bars share one
//! [`MultiProgress`], so a caller's outer bar (the lab's grid) and a run's bar stack cleanly.
use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The process's bar stack.
pub fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(MultiProgress::new)
}

/// A bar of `len` steps drawn with `template` (indicatif syntax); hidden when `visible` is
/// false (tests, library callers that draw their own).
pub fn bar(len: u64, visible: bool, template: &str) -> ProgressBar {
    let bar = if visible {
        multi().add(ProgressBar::new(len))
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Clears a finished bar and takes it off the stack.
pub fn finish(bar: &ProgressBar) {
    bar.finish_and_clear();
    multi().remove(bar);
}
