//! Average pooling with stride equal to the kernel (global when the kernel covers the input).

use super::LayerOps;
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
        let mut y = Tensor::zeros(x.b, self.out_dims);
        for b in 0..x.b {
            pool_forward(self, x.sample(b), y.sample_mut(b));
        }
        y
    }

    /// Backward pass: each input of a window gets the window's gradient / window size.
    pub fn backward(&mut self, dy: Tensor) -> Tensor {
        let mut dx = Tensor::zeros(dy.b, self.in_dims);
        for b in 0..dy.b {
            pool_backward(self, dy.sample(b), dx.sample_mut(b));
        }
        dx
    }
}

crate::math::widest! {
    /// One sample forward: each output is the sum over the window's rows of
    /// (the row's window sum · 1/window size), `ys` zeroed on entry.
    fn pool_forward(pool: &AvgPool, xs: &[f32], ys: &mut [f32]) {
        let (i, o, kh, kw) = (pool.in_dims, pool.out_dims, pool.kh, pool.kw);
        let scale = 1.0 / (kh * kw) as f32;
        for c in 0..i.c {
            for iy in 0..o.h * kh {
                let xrow = &xs[(c * i.h + iy) * i.w..][..o.w * kw];
                let yrow = &mut ys[(c * o.h + iy / kh) * o.w..][..o.w];
                if kw == 2 {
                    // The common 2 × 2 case, in a loop the compiler vectorises.
                    for (yv, win) in yrow.iter_mut().zip(xrow.chunks_exact(2)) {
                        *yv += (win[0] + win[1]) * scale;
                    }
                } else {
                    for (yv, win) in yrow.iter_mut().zip(xrow.chunks_exact(kw)) {
                        *yv += win.iter().sum::<f32>() * scale;
                    }
                }
            }
        }
    }
}

crate::math::widest! {
    /// One sample backward into `xs` (zeroed on entry: borders outside every window stay 0).
    fn pool_backward(pool: &AvgPool, ds: &[f32], xs: &mut [f32]) {
        let (i, o, kh, kw) = (pool.in_dims, pool.out_dims, pool.kh, pool.kw);
        let scale = 1.0 / (kh * kw) as f32;
        for c in 0..i.c {
            for iy in 0..o.h * kh {
                let drow = &ds[(c * o.h + iy / kh) * o.w..][..o.w];
                let xrow = &mut xs[(c * i.h + iy) * i.w..][..o.w * kw];
                if kw == 2 {
                    for (win, &d) in xrow.chunks_exact_mut(2).zip(drow) {
                        let v = d * scale;
                        win[0] = v;
                        win[1] = v;
                    }
                } else {
                    for (win, &d) in xrow.chunks_exact_mut(kw).zip(drow) {
                        win.fill(d * scale);
                    }
                }
            }
        }
    }
}

impl LayerOps for AvgPool {
    fn forward(&mut self, x: Tensor, _train: bool) -> Tensor {
        AvgPool::forward(self, x)
    }

    fn backward(&mut self, dy: Tensor) -> Tensor {
        AvgPool::backward(self, dy)
    }

    fn in_dims(&self) -> Dims {
        self.in_dims
    }

    fn out_dims(&self) -> Dims {
        self.out_dims
    }

    fn describe(&self) -> String {
        format!("avgpool {}x{}", self.kh, self.kw)
    }
}
