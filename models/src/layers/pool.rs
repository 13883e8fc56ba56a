//! Average pooling with stride equal to the kernel (global when the kernel covers the input).

use crate::tensor::{Dims, Tensor};

/// `kh × kw` average pooling, stride `kh × kw`, borders that do not fill a window dropped.
#[derive(Clone, Debug)]
pub struct AvgPool {
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Input shape.
    pub in_dims: Dims,
    /// Output shape.
    pub out_dims: Dims,
}

impl AvgPool {
    /// Pooling of `in_dims` by a `k × k` window.
    pub fn new(in_dims: Dims, k: usize) -> Self {
        Self::rect(in_dims, k, k)
    }

    /// Global average pooling.
    pub fn global(in_dims: Dims) -> Self {
        Self::rect(in_dims, in_dims.h, in_dims.w)
    }

    fn rect(in_dims: Dims, kh: usize, kw: usize) -> Self {
        assert!(
            kh >= 1 && kw >= 1 && kh <= in_dims.h && kw <= in_dims.w,
            "pool window larger than input"
        );
        let out_dims = Dims::new(in_dims.c, in_dims.h / kh, in_dims.w / kw);
        Self {
            kh,
            kw,
            in_dims,
            out_dims,
        }
    }

    /// Forward pass (nothing to keep).
    pub fn forward(&mut self, x: Tensor) -> Tensor {
        let (i, o) = (self.in_dims, self.out_dims);
        let mut y = Tensor::zeros(x.b, o);
        let scale = 1.0 / (self.kh * self.kw) as f32;
        for b in 0..x.b {
            let xs = x.sample(b);
            let ys = y.sample_mut(b);
            for c in 0..i.c {
                for iy in 0..o.h * self.kh {
                    let oy = iy / self.kh;
                    let xrow = &xs[(c * i.h + iy) * i.w..][..o.w * self.kw];
                    let yrow = &mut ys[(c * o.h + oy) * o.w..][..o.w];
                    for (yv, win) in yrow.iter_mut().zip(xrow.chunks_exact(self.kw)) {
                        *yv += win.iter().sum::<f32>() * scale;
                    }
                }
            }
        }
        y
    }

    /// Backward pass: each input of a window gets the window's gradient / window size.
    pub fn backward(&mut self, dy: Tensor) -> Tensor {
        let (i, o) = (self.in_dims, self.out_dims);
        let mut dx = Tensor::zeros(dy.b, i);
        let scale = 1.0 / (self.kh * self.kw) as f32;
        for b in 0..dy.b {
            let ds = dy.sample(b);
            let xs = dx.sample_mut(b);
            for c in 0..i.c {
                for iy in 0..o.h * self.kh {
                    let oy = iy / self.kh;
                    let drow = &ds[(c * o.h + oy) * o.w..][..o.w];
                    let xrow = &mut xs[(c * i.h + iy) * i.w..][..o.w * self.kw];
                    for (win, &d) in xrow.chunks_exact_mut(self.kw).zip(drow) {
                        win.fill(d * scale);
                    }
                }
            }
        }
        dx
    }
}
