//! The process's CPU time, alone in its own test binary: `getrusage` counts every thread of
//! the process, and tests running beside it in one binary would add theirs.

#[cfg(unix)]
#[test]
fn cpu_time_grows_with_work_and_not_while_asleep() {
    let a = freezeframe_lab::done::process_cpu_seconds().expect("getrusage on this platform");
    // Busy work the optimiser cannot remove (its result is printed), until 0.1 CPU s
    // were spent or 20 s passed on a machine too busy to give them.
    let (mut x, t) = (0u64, std::time::Instant::now());
    let mut b = a;
    while b - a < 0.1 && t.elapsed().as_secs() < 20 {
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        b = freezeframe_lab::done::process_cpu_seconds().expect("getrusage on this platform");
    }
    assert!(b - a >= 0.1, "cpu {a} -> {b} in 20 s of busy work ({x})");
    // Asleep, the wall clock moves and the CPU time (nearly) does not: this is what keeps
    // a paused run's time out of it.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let c = freezeframe_lab::done::process_cpu_seconds().expect("getrusage on this platform");
    assert!(c - b < 0.2, "cpu {b} -> {c} over a 300 ms sleep");
}
