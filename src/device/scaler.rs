//! What has the device skipped? The loss scaler's words on the device and the asynchronous
//! read-back of its step counters; it records no dispatch.

use crate::clip::GradStats;
use crate::context::BufferRange;
use crate::error::{Error, Result};
use crate::optimizer::Optimizer;
use crate::plan::aux::AUX_SCALE;
use crate::rules::UpdateRule;

impl<R: UpdateRule> Optimizer<R> {
    /// Where the device keeps the current loss scale (one f32): bind it in the kernel that
    /// seeds your backward pass to scale the loss without a read-back. Storage bindings
    /// start at 256-byte aligned offsets, so bind the whole `buffer` read-only and read
    /// element `offset`.
    pub fn loss_scale_buffer(&mut self) -> Result<BufferRange> {
        self.scaler_plan()?;
        let plan = self.plan.as_ref().expect("prepared");
        Ok(BufferRange::new(&plan.aux, AUX_SCALE, 1))
    }

    /// The current loss scale (reads back; waits for the GPU).
    pub fn loss_scale(&mut self) -> Result<f32> {
        Ok(self.scaler_words()?[0])
    }

    /// Steps skipped for a non-finite gradient so far (reads back; waits for the GPU).
    pub fn skipped_steps(&mut self) -> Result<u64> {
        Ok(self.scaler_words()?[4] as u64)
    }

    /// Steps that updated the parameters: [`Optimizer::step_count`] less the skipped ones.
    /// This is the step number the rule's bias corrections use. Reads back only with loss
    /// scaling.
    pub fn applied_steps(&mut self) -> Result<u64> {
        if self.settings.scaler.is_none() {
            return Ok(self.t);
        }
        let w = self.scaler_words()?;
        // Steps recorded but not yet executed (record_step without submitting) cannot
        // have been skipped yet.
        Ok(self.t - w[4] as u64)
    }

    pub(crate) fn scaler_plan(&mut self) -> Result<()> {
        if self.settings.scaler.is_none() {
            return Err(Error::InvalidState(
                "no loss scaler: call set_grad_scaler before the first step".into(),
            ));
        }
        self.prepare()
    }

    /// aux[5..10): scale, growth tracker, found_inf, executed, skipped.
    pub(crate) fn scaler_words(&mut self) -> Result<[f32; 5]> {
        self.scaler_plan()?;
        let plan = self.plan.as_ref().expect("prepared");
        let b = self.ctx.download_bytes(&plan.aux, AUX_SCALE * 4, 20)?;
        let v: Vec<f32> = bytemuck::pod_collect_to_vec(&b);
        Ok([v[0], v[1], v[2], v[3], v[4]])
    }

    /// Overwrites the scaler's device words (checkpoint loading) and the host's count.
    pub(crate) fn set_scaler_words(&mut self, w: [f32; 5]) -> Result<()> {
        self.scaler_plan()?;
        self.settle_ack(true)?;
        let plan = self.plan.as_ref().expect("prepared");
        self.ctx
            .queue()
            .write_buffer(&plan.aux, AUX_SCALE * 4, bytemuck::cast_slice(&w));
        self.ack = (w[3] as u64, w[4] as u64);
        Ok(())
    }

    /// Takes in a finished read-back of the device's step counters, if any; waits for one
    /// in flight if `wait`.
    pub(crate) fn settle_ack(&mut self, wait: bool) -> Result<()> {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let Some(read) = self.pending_ack.as_mut() else {
            return Ok(());
        };
        let mut cx = Context::from_waker(Waker::noop());
        let mut got = std::pin::Pin::new(&mut *read).poll(&mut cx);
        if got.is_pending() {
            let kind = if wait {
                wgpu::PollType::wait_indefinitely()
            } else {
                wgpu::PollType::Poll
            };
            self.ctx
                .device()
                .poll(kind)
                .map_err(|e| Error::DeviceLost(e.to_string()))?;
            got = std::pin::Pin::new(&mut *read).poll(&mut cx);
        }
        let Poll::Ready(r) = got else {
            return Ok(());
        };
        self.pending_ack = None;
        match r {
            Ok(b) => {
                let v: Vec<f32> = bytemuck::pod_collect_to_vec(&b);
                // A newer count never goes back (a load may have set one meanwhile).
                if v[0] as u64 >= self.ack.0 {
                    self.ack = (v[0] as u64, v[1] as u64);
                }
                Ok(())
            }
            // A failed map is dropped, as before: a later read-back brings the counts.
            Err(Error::Readback(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes sure the host knows the device's skip count as of a step recent enough that
    /// step `s`'s slot of candidates covers every skip count possible by then.
    pub(crate) fn refresh_ack(&mut self, s: u64, lag: u64) -> Result<()> {
        let covered = |me: &Self| s - 1 - me.ack.0.min(s - 1) < lag;
        self.settle_ack(false)?;
        if covered(self) {
            return Ok(());
        }
        self.settle_ack(true)?;
        if covered(self) {
            return Ok(());
        }
        let w = self.scaler_words()?;
        self.ack = (w[3] as u64, w[4] as u64);
        if covered(self) {
            return Ok(());
        }
        Err(Error::InvalidState(format!(
            "loss scaling: {} steps recorded but not submitted; submit record_step's encoder \
             at least every {lag} steps",
            s - 1 - self.ack.0
        )))
    }

    /// The last step's gradient norm and non-finite count (reads back; waits for the GPU).
    /// Needs clipping enabled (a `GradClip` with neither field set still measures).
    pub fn grad_stats(&mut self) -> Result<GradStats> {
        self.prepare()?;
        let plan = self.plan.as_ref().expect("prepared");
        if !plan.program.has(crate::plan::program::Pass::GradNorm) {
            return Err(Error::InvalidState(
                "grad_stats needs set_grad_clip before the first step".into(),
            ));
        }
        let b = self.ctx.download_bytes(&plan.aux, 0, 20)?;
        let v: Vec<f32> = bytemuck::pod_collect_to_vec(&b);
        Ok(GradStats {
            norm: v[2],
            nonfinite: v[4] as u32,
        })
    }
}
