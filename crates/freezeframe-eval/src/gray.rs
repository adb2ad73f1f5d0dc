//! Single-channel float images: luminance frames, sampling, smoothing, pyramids.
use freezeframe_data::Video;

#[derive(Debug, Clone, PartialEq)]
pub struct Gray {
    pub w: usize,
    pub h: usize,
    pub data: Vec<f32>,
}

impl Gray {
    pub fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            data: vec![0.0; w * h],
        }
    }

    #[inline]
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.w + x]
    }

    /// Clamped-edge pixel access with signed coordinates.
    #[inline]
    pub fn clamped(&self, x: isize, y: isize) -> f32 {
        let x = x.clamp(0, self.w as isize - 1) as usize;
        let y = y.clamp(0, self.h as isize - 1) as usize;
        self.at(x, y)
    }

    /// Bilinear sample with clamped edges.
    pub fn sample(&self, x: f32, y: f32) -> f32 {
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (xi, yi) = (x0 as isize, y0 as isize);
        let a = self.clamped(xi, yi);
        let b = self.clamped(xi + 1, yi);
        let c = self.clamped(xi, yi + 1);
        let d = self.clamped(xi + 1, yi + 1);
        (a * (1.0 - fx) + b * fx) * (1.0 - fy) + (c * (1.0 - fx) + d * fx) * fy
    }

    /// Separable binomial [1 4 6 4 1]/16 blur (a Gaussian of σ ≈ 1).
    pub fn blur(&self) -> Gray {
        const K: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
        let mut tmp = Gray::new(self.w, self.h);
        for y in 0..self.h {
            for x in 0..self.w {
                tmp.data[y * self.w + x] = (0..5)
                    .map(|k| K[k] * self.clamped(x as isize + k as isize - 2, y as isize))
                    .sum();
            }
        }
        let mut out = Gray::new(self.w, self.h);
        for y in 0..self.h {
            for x in 0..self.w {
                out.data[y * self.w + x] = (0..5)
                    .map(|k| K[k] * tmp.clamped(x as isize, y as isize + k as isize - 2))
                    .sum();
            }
        }
        out
    }

    /// Blur, then keep every other pixel.
    pub fn half(&self) -> Gray {
        let b = self.blur();
        let (w, h) = (self.w.div_ceil(2), self.h.div_ceil(2));
        let mut out = Gray::new(w, h);
        for y in 0..h {
            for x in 0..w {
                out.data[y * w + x] = b.at((2 * x).min(self.w - 1), (2 * y).min(self.h - 1));
            }
        }
        out
    }

    /// Central-difference gradients (∂x, ∂y).
    pub fn gradients(&self) -> (Gray, Gray) {
        let (mut gx, mut gy) = (Gray::new(self.w, self.h), Gray::new(self.w, self.h));
        for y in 0..self.h as isize {
            for x in 0..self.w as isize {
                let i = y as usize * self.w + x as usize;
                gx.data[i] = 0.5 * (self.clamped(x + 1, y) - self.clamped(x - 1, y));
                gy.data[i] = 0.5 * (self.clamped(x, y + 1) - self.clamped(x, y - 1));
            }
        }
        (gx, gy)
    }
}

/// Rec. 601 luma of frame `t` (grey videos pass through).
pub fn luma(v: &Video, t: usize) -> Gray {
    let mut g = Gray::new(v.width, v.height);
    for y in 0..v.height {
        for x in 0..v.width {
            g.data[y * v.width + x] = if v.channels >= 3 {
                0.299 * v.get(t, 0, y, x) + 0.587 * v.get(t, 1, y, x) + 0.114 * v.get(t, 2, y, x)
            } else {
                v.get(t, 0, y, x)
            };
        }
    }
    g
}

/// Every frame's luma.
pub fn lumas(v: &Video) -> Vec<Gray> {
    (0..v.frames).map(|t| luma(v, t)).collect()
}
