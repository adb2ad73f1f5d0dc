//! A video as a flat `[T, C, H, W]` buffer of f32 in [0, 1].

#[derive(Debug, Clone, PartialEq)]
pub struct Video {
    pub frames: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Row-major [T, C, H, W].
    pub data: Vec<f32>,
}

impl Video {
    pub fn zeros(frames: usize, channels: usize, height: usize, width: usize) -> Self {
        Self {
            frames,
            channels,
            height,
            width,
            data: vec![0.0; frames * channels * height * width],
        }
    }

    pub fn from_data(
        frames: usize,
        channels: usize,
        height: usize,
        width: usize,
        data: Vec<f32>,
    ) -> Self {
        debug_assert_eq!(data.len(), frames * channels * height * width);
        Self {
            frames,
            channels,
            height,
            width,
            data,
        }
    }

    #[inline]
    pub fn idx(&self, t: usize, c: usize, y: usize, x: usize) -> usize {
        ((t * self.channels + c) * self.height + y) * self.width + x
    }

    #[inline]
    pub fn get(&self, t: usize, c: usize, y: usize, x: usize) -> f32 {
        self.data[self.idx(t, c, y, x)]
    }

    /// One frame as interleaved RGB bytes (grey replicated when C = 1).
    pub fn frame_rgb8(&self, t: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.height * self.width * 3);
        for y in 0..self.height {
            for x in 0..self.width {
                for c in 0..3 {
                    let ch = if self.channels >= 3 { c } else { 0 };
                    let v = self.get(t, ch, y, x).clamp(0.0, 1.0);
                    out.push((v * 255.0).round() as u8);
                }
            }
        }
        out
    }
}
