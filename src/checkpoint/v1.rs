//! Format version 1 (written before settings were saved as JSON with CRC-32s): its
//! settings, checked strictly against the optimizer's; a migration, not a second loader.

use std::collections::HashMap;

use super::{err, require_equal, Settings};
use crate::error::Result;
use crate::optimizer::Optimizer;
use crate::rules::UpdateRule;
use crate::schedule::LrSchedule;

impl<R: UpdateRule> Optimizer<R> {
    /// Version 1 (settings written with `Debug`, schedules from the base lr by the global
    /// step): everything must equal this optimizer's, as version 1 loaded; the schedules
    /// then stand at the saved step, at the lr version 1 would have used next.
    pub(super) fn check_v1(
        &self,
        meta: &HashMap<String, String>,
        path: &str,
    ) -> Result<Settings<R>> {
        let mut want: HashMap<String, String> = HashMap::new();
        want.insert("rule".into(), self.groups[0].kernel().name.into());
        want.insert("slots".into(), self.groups[0].state_slots().join(","));
        want.insert("groups".into(), self.groups.len().to_string());
        let layout: Vec<String> = self
            .tensors
            .iter()
            .map(|t| format!("{}:{}", t.group, t.param.len))
            .collect();
        want.insert("tensors".into(), layout.join(","));
        want.insert("grad_clip".into(), format!("{:?}", self.settings.clip));
        want.insert(
            "state_format".into(),
            format!("{:?}", self.settings.state_format),
        );
        want.insert("grad_scaler".into(), format!("{:?}", self.settings.scaler));
        want.insert(
            "stochastic_rounding".into(),
            format!("{:?}", self.settings.stochastic),
        );
        for (i, g) in self.groups.iter().enumerate() {
            let s = &self.schedules[i];
            let mut g = g.clone();
            let base = s.initial_lr.unwrap_or(g.lr());
            if s.running.is_some() {
                g.set_lr(base);
            }
            want.insert(format!("group.{i}"), format!("{g:?}"));
            let old: Option<(f64, LrSchedule)> = s.running.as_ref().map(|r| (base, r.0.clone()));
            want.insert(format!("schedule.{i}"), format!("{old:?}"));
        }
        let mut keys: Vec<&String> = want.keys().collect();
        keys.sort();
        for key in keys {
            require_equal(meta, &want, key, path)?;
        }
        let step: u64 = meta
            .get("step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| err(path, "missing or malformed step"))?;
        // Version 1 schedules ran from the base lr by the global step count, each step's
        // lr from the closed form: the next step uses the lr version 1 would have used
        // (the chain of `LrSchedule::next` replayed to here can differ in its last bit, as
        // a cosine does), and the chain continues from it.
        let mut groups = self.groups.clone();
        let mut schedules = self.schedules.clone();
        for (g, s) in groups.iter_mut().zip(&mut schedules) {
            if let (Some((sched, _)), Some(base)) = (s.running.clone(), s.initial_lr) {
                g.set_lr(sched.lr(base, step.saturating_add(1)));
                s.running = Some((sched, step));
            }
        }
        Ok(Settings {
            groups,
            schedules,
            clip: self.settings.clip,
            scaler: self.settings.scaler,
        })
    }
}
