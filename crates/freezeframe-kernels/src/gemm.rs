//! Strided matrix views and one safe entry to the `gemm` crate.
//!
//! Why `gemm` is pinned exactly (`=0.19.0`): the unsafe call below relies on that version's
//! contract, which is not part of a semver promise we can check — the meaning and order of its
//! two scale factors (`alpha` scales the destination, read only when `read_dst` is true; `beta`
//! the product), that with `read_dst = false` it writes every destination element without
//! reading any (so [`Product::to_vec`] may hand it uninitialised memory), and that under
//! `Parallelism::Rayon` its threads write disjoint destination tiles. A new version must be
//! re-read against these before the pin moves.

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
    /// Whether an (m × k) view stays inside `data` (an offset that overflows does not).
    fn fits(&self, m: usize, k: usize) -> bool {
        m == 0 || k == 0 || last_index(m, k, self.rs, self.cs).is_some_and(|i| i < self.data.len())
    }
}

/// The offset of element (rows − 1, cols − 1) of a view, or `None` when it overflows.
fn last_index(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    (rows - 1)
        .checked_mul(rs)?
        .checked_add((cols - 1).checked_mul(cs)?)
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
    ///
    /// # Panics
    /// When an operand's view or the output's rows do not fit their buffers, or output rows
    /// overlap (`dst_rs < n` with more than one row).
    pub fn write_to(self, dst: &mut [f32], dst_rs: usize, threads: Threads) {
        // SAFETY: `dst` is a unique borrow of `dst.len()` initialised elements, so it is valid
        // for reads and writes and overlaps neither operand (they are shared borrows).
        unsafe { self.run(dst.as_mut_ptr(), dst.len(), dst_rs, false, threads) }
    }

    /// `dst` (rows `dst_rs` apart) += the product. Panics as [`Product::write_to`] does.
    pub fn add_to(self, dst: &mut [f32], dst_rs: usize, threads: Threads) {
        // SAFETY: as in `write_to`.
        unsafe { self.run(dst.as_mut_ptr(), dst.len(), dst_rs, true, threads) }
    }

    /// The product as a new dense `[m, n]` vector.
    pub fn to_vec(self, threads: Threads) -> Vec<f32> {
        let len = self.m * self.n;
        let mut out = Vec::with_capacity(len);
        // SAFETY: `out` owns capacity for `len` elements and is borrowed by nobody else, so it
        // is valid for writes and overlaps no operand. Without accumulation gemm 0.19 only
        // writes the output, every one of its m·n elements (see the module note on the pin), so
        // the buffer needs no zero-filling first and no uninitialised value is ever read.
        unsafe { self.run(out.as_mut_ptr(), len, self.n, false, threads) };
        // SAFETY: the call above initialised all `len` elements.
        unsafe { out.set_len(len) };
        out
    }

    /// The one call into `gemm`, after checking every index it will touch against the buffers.
    ///
    /// # Safety
    /// `dst` must be valid for writes of `dst_len` consecutive `f32`s (and for reads of them
    /// when `accumulate`, which then must be initialised), and no other reference may read or
    /// write that memory during the call — in particular it must not overlap `lhs` or `rhs`.
    /// Everything else (operand views inside their slices, output rows inside `dst_len` and not
    /// overlapping each other, which the threads of `Parallelism::Rayon` rely on to write
    /// disjoint tiles) is checked here and panics when violated.
    unsafe fn run(
        self,
        dst: *mut f32,
        dst_len: usize,
        dst_rs: usize,
        accumulate: bool,
        threads: Threads,
    ) {
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
            m == 0 || n == 0 || last_index(m, n, dst_rs, 1).is_some_and(|i| i < dst_len),
            "matmul output out of bounds"
        );
        // Overlapping output rows would have two threads write one element.
        assert!(m <= 1 || dst_rs >= n, "matmul output rows overlap");
        let parallelism = match threads {
            Threads::All if m * n * k >= PARALLEL_MIN_WORK => gemm::Parallelism::Rayon(0),
            _ => gemm::Parallelism::None,
        };
        // SAFETY: every index gemm touches, (r·rs + c·cs) for r < rows and c < cols, lies inside the
        // buffers, as the asserts above check; output rows do not overlap, so the rayon tasks write
        // disjoint elements; the caller guarantees `dst` is valid and aliases nothing.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_matches_the_naive_one() {
        let a: Vec<f32> = (0..6).map(|v| v as f32).collect(); // [2, 3]
        let b: Vec<f32> = (0..12).map(|v| v as f32 * 0.5).collect(); // [3, 4]
        let p = Product::new(2, 4, 3, Mat::rows(&a, 3), Mat::rows(&b, 4));
        let got = p.to_vec(Threads::All);
        for r in 0..2 {
            for c in 0..4 {
                let want: f32 = (0..3).map(|k| a[r * 3 + k] * b[k * 4 + c]).sum();
                assert_eq!(got[r * 4 + c], want);
            }
        }
        // Rows 5 apart into a wider buffer; the gap stays untouched; add_to accumulates.
        let mut dst = [1.0f32; 9];
        p.scaled(2.0).add_to(&mut dst[..9], 5, Threads::One);
        assert_eq!(dst[4], 1.0);
        assert_eq!(dst[0], 1.0 + 2.0 * got[0]);
        assert_eq!(dst[8], 1.0 + 2.0 * got[7]);
    }

    #[test]
    #[should_panic(expected = "matmul output out of bounds")]
    fn an_output_too_short_is_refused() {
        let (a, b) = ([1.0f32; 6], [1.0f32; 12]);
        let mut dst = [0.0f32; 7];
        Product::new(2, 4, 3, Mat::rows(&a, 3), Mat::rows(&b, 4)).write_to(
            &mut dst,
            4,
            Threads::One,
        );
    }

    #[test]
    #[should_panic(expected = "matmul output rows overlap")]
    fn overlapping_output_rows_are_refused() {
        let a = [1.0f32; 12];
        let mut dst = [0.0f32; 16];
        Product::new(2, 4, 3, Mat::rows(&a, 3), Mat::rows(&a, 4)).write_to(
            &mut dst,
            2,
            Threads::All,
        );
    }

    #[test]
    #[should_panic(expected = "matmul operand out of bounds")]
    fn an_operand_view_past_its_slice_is_refused() {
        let a = [1.0f32; 5];
        let mut dst = [0.0f32; 8];
        Product::new(2, 4, 3, Mat::rows(&a, 3), Mat::rows(&[1.0; 12], 4)).write_to(
            &mut dst,
            4,
            Threads::One,
        );
    }
}
