//! Strided matrix views and one safe entry to the `gemm` crate.
use std::mem::MaybeUninit;

/// A read-only strided matrix view: element (r, c) at `data[r·rs + c·cs]`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// Rows `stride` apart, columns adjacent.
    pub fn rows(data: &'a [f32], stride: usize) -> Self {
        Self {
            data,
            rs: stride,
            cs: 1,
        }
    }
    /// The transpose of [`Mat::rows`]: columns `stride` apart, rows adjacent.
    pub fn cols(data: &'a [f32], stride: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: stride,
        }
    }
    /// Whether an (m × k) view stays inside `data`.
    fn fits(&self, m: usize, k: usize) -> bool {
        m == 0 || k == 0 || (m - 1) * self.rs + (k - 1) * self.cs < self.data.len()
    }
}

/// How a product is split across threads.
#[derive(Clone, Copy)]
pub enum Threads {
    /// Inside a task that is already one of many parallel ones.
    One,
    /// A product on its own: all of rayon's threads once it is large enough to pay for them.
    All,
}

/// Multiply-adds below which a product stays on one thread (flex's own matmul threshold; below
/// it the fork/join costs more than it saves: the `tiny` step took 7.9 ms without it, 4.8–5.6 with).
const PARALLEL_MIN_WORK: usize = 192 * 192 * 192;

/// `dst[m, n]` (dense rows, not yet initialised) ← alpha · lhs[m, k] · rhs[k, n].
#[allow(clippy::too_many_arguments)]
pub fn matmul_into(
    dst: &mut [MaybeUninit<f32>],
    m: usize,
    n: usize,
    k: usize,
    lhs: Mat,
    rhs: Mat,
    alpha: f32,
    threads: Threads,
) {
    // Without `accumulate` gemm only writes the output, so its uninitialised values are never read.
    let (ptr, len) = (dst.as_mut_ptr().cast::<f32>(), dst.len());
    gemm_checked(ptr, len, n, m, n, k, lhs, rhs, alpha, false, threads)
}

/// `dst[m, n]` (dense rows) ← alpha · lhs[m, k] · rhs[k, n] (+ dst when `accumulate`).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    dst: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    lhs: Mat,
    rhs: Mat,
    alpha: f32,
    accumulate: bool,
    threads: Threads,
) {
    matmul_strided(dst, n, m, n, k, lhs, rhs, alpha, accumulate, threads)
}

/// As [`matmul`] with the rows of `dst` `dst_rs` apart.
#[allow(clippy::too_many_arguments)]
pub fn matmul_strided(
    dst: &mut [f32],
    dst_rs: usize,
    m: usize,
    n: usize,
    k: usize,
    lhs: Mat,
    rhs: Mat,
    alpha: f32,
    accumulate: bool,
    threads: Threads,
) {
    gemm_checked(
        dst.as_mut_ptr(),
        dst.len(),
        dst_rs,
        m,
        n,
        k,
        lhs,
        rhs,
        alpha,
        accumulate,
        threads,
    )
}

/// The one call into `gemm`, after checking every index it will touch against the buffers.
#[allow(clippy::too_many_arguments)]
fn gemm_checked(
    dst: *mut f32,
    dst_len: usize,
    dst_rs: usize,
    m: usize,
    n: usize,
    k: usize,
    lhs: Mat,
    rhs: Mat,
    alpha: f32,
    accumulate: bool,
    threads: Threads,
) {
    // The bounds the raw-pointer call relies on, checked once per call.
    assert!(
        lhs.fits(m, k) && rhs.fits(k, n),
        "matmul operand out of bounds"
    );
    assert!(
        m == 0 || n == 0 || (m - 1) * dst_rs + n <= dst_len,
        "matmul output out of bounds"
    );
    let parallelism = match threads {
        Threads::All if m * n * k >= PARALLEL_MIN_WORK => gemm::Parallelism::Rayon(0),
        _ => gemm::Parallelism::None,
    };
    // SAFETY: every index gemm touches, (r·rs + c·cs) for r < rows and c < cols, lies inside the
    // buffers, as the asserts above check; `dst` comes from a unique borrow and does not alias the
    // inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            alpha,
            false,
            false,
            false,
            parallelism,
        )
    }
}
