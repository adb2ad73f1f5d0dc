//! Strided matrix views and one safe entry to the `gemm` crate.

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
    /// A large product on its own: all of rayon's threads.
    All,
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
    // The bounds the raw-pointer call relies on, checked once per call.
    assert!(
        lhs.fits(m, k) && rhs.fits(k, n),
        "matmul operand out of bounds"
    );
    assert!(
        m == 0 || n == 0 || (m - 1) * dst_rs + n <= dst.len(),
        "matmul output out of bounds"
    );
    let parallelism = match threads {
        Threads::One => gemm::Parallelism::None,
        Threads::All => gemm::Parallelism::Rayon(0),
    };
    // SAFETY: every index gemm touches, (r·rs + c·cs) for r < rows and c < cols, lies inside the
    // slices, as the asserts above check; `dst` is borrowed mutably and does not alias the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
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
