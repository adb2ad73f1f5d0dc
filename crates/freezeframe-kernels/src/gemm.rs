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
    /// A product on its own: all of rayon's threads once it is large enough to pay for them.
    All,
}

/// Multiply-adds below which a product stays on one thread (flex's own matmul threshold; below
/// it the fork/join costs more than it saves: the `tiny` step took 7.9 ms without it, 4.8–5.6 with).
const PARALLEL_MIN_WORK: usize = 192 * 192 * 192;

/// The product `alpha · lhs[m, k] · rhs[k, n]`, to be written somewhere.
#[derive(Clone, Copy)]
pub struct Product<'a> {
    m: usize,
    n: usize,
    k: usize,
    lhs: Mat<'a>,
    rhs: Mat<'a>,
    alpha: f32,
}

impl<'a> Product<'a> {
    pub fn new(m: usize, n: usize, k: usize, lhs: Mat<'a>, rhs: Mat<'a>) -> Self {
        Self {
            m,
            n,
            k,
            lhs,
            rhs,
            alpha: 1.0,
        }
    }

    pub fn scaled(self, alpha: f32) -> Self {
        Self { alpha, ..self }
    }

    /// `dst` (rows `dst_rs` apart, columns adjacent) ← the product.
    pub fn write_to(self, dst: &mut [f32], dst_rs: usize, threads: Threads) {
        self.run(dst.as_mut_ptr(), dst.len(), dst_rs, false, threads)
    }

    /// `dst` (rows `dst_rs` apart) += the product.
    pub fn add_to(self, dst: &mut [f32], dst_rs: usize, threads: Threads) {
        self.run(dst.as_mut_ptr(), dst.len(), dst_rs, true, threads)
    }

    /// The product as a new dense `[m, n]` vector.
    pub fn to_vec(self, threads: Threads) -> Vec<f32> {
        let len = self.m * self.n;
        let mut out = Vec::with_capacity(len);
        // Without accumulation gemm only writes the output, every one of its m·n elements, so
        // the buffer needs no zero-filling first and no uninitialised value is ever read.
        self.run(out.as_mut_ptr(), len, self.n, false, threads);
        // SAFETY: the call above initialised all `len` elements.
        unsafe { out.set_len(len) };
        out
    }

    /// The one call into `gemm`, after checking every index it will touch against the buffers.
    fn run(self, dst: *mut f32, dst_len: usize, dst_rs: usize, accumulate: bool, threads: Threads) {
        let Self {
            m,
            n,
            k,
            lhs,
            rhs,
            alpha,
        } = self;
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
}
