//! Which kernel text runs? A [`KernelVariant`] names one compute pipeline's WGSL and its
//! overridable constants; it may not touch a device (compiling is `kernel/cache.rs`).
//!
//! The text is the rule's `update` (its file in `shaders/`) after shared pieces that are
//! WGSL files too: a prelude for the vector width (`shaders/parts/prelude_*.wgsl`), the
//! 16-bit conversions (`half.wgsl`), the accessors of params and grads for their element
//! types (`shaders/parts/param_*.wgsl`, `grad_*.wgsl`), the bindings and entry points
//! (`common.wgsl`), the state format (`state_f32.wgsl` or `state_q8.wgsl`) and a
//! two-phase rule's first pass (`two_phase.wgsl`). Rust writes only `const` lines (group
//! count, lag, the uniform array's length) and picks the pieces; what else varies per
//! variant is a pipeline-overridable constant ([`KernelVariant::constants`]).

use crate::half::Dtype;
use crate::rules::{AnyRule, Kernel, UpdateRule};

const COMMON: &str = include_str!("../../shaders/common.wgsl");
const TWO_PHASE: &str = include_str!("../../shaders/two_phase.wgsl");
const STATE_F32: &str = include_str!("../../shaders/state_f32.wgsl");
const STATE_Q8: &str = include_str!("../../shaders/state_q8.wgsl");
const HALF: &str = include_str!("../../shaders/half.wgsl");
const PRELUDE_VEC4: &str = include_str!("../../shaders/parts/prelude_vec4.wgsl");
const PRELUDE_SCALAR: &str = include_str!("../../shaders/parts/prelude_scalar.wgsl");
const PARAM_F32: &str = include_str!("../../shaders/parts/param_f32.wgsl");
const PARAM_MASTER_BF16: &str = include_str!("../../shaders/parts/param_master_bf16.wgsl");
const PARAM_MASTER_F16: &str = include_str!("../../shaders/parts/param_master_f16.wgsl");
const PARAM_SR_BF16: &str = include_str!("../../shaders/parts/param_sr_bf16.wgsl");
const GRAD_F32: &str = include_str!("../../shaders/parts/grad_f32.wgsl");
const GRAD_BF16: &str = include_str!("../../shaders/parts/grad_bf16.wgsl");
const GRAD_F16: &str = include_str!("../../shaders/parts/grad_f16.wgsl");

/// Candidates of per-step scalars per uniform slot with loss scaling, at most (fewer when
/// many groups leave less room in the uniform binding).
pub const MAX_LAG: u32 = 32;

/// 8-bit block-wise state in a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Q8Kernel {
    /// Bit k set where state slot k can be negative (the signed quantization map).
    pub signed: u32,
    /// Requantization rounds stochastically (else to nearest).
    pub stochastic: bool,
}

/// Words of a step's [`crate::rules::Hyper`] that a pipeline takes as constants: word k
/// is `Some(bits)` where every group of the dispatch gives it the f32 with these bits
/// this step, `None` where it is read from the uniform at run time. Only a rule's
/// [`crate::rules::Kernel::branch_words`] are ever fixed; the values are the bits the
/// uniform holds, so a fixed pipeline computes exactly what the generic one does (its
/// driver only drops the branches not taken). [`FixedWords::NONE`]: the generic kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FixedWords(pub [Option<u32>; 16]);

impl FixedWords {
    /// Nothing fixed: every word read at run time.
    pub const NONE: FixedWords = FixedWords([None; 16]);

    /// Bit k set where word k is fixed (the kernel's `FIXED` constant).
    pub fn mask(&self) -> u32 {
        (self.0.iter().enumerate())
            .filter(|(_, w)| w.is_some())
            .map(|(k, _)| 1u32 << k)
            .sum()
    }

    /// The words of `kernel`'s scalars that every one of `candidates` (each a group's
    /// scalars for one possible step) gives the same bits: its branch words at any value,
    /// its zero words where they are +0.0, its one words where they are 1.0. The others
    /// stay `None`.
    pub fn agreed<'a>(
        kernel: &Kernel,
        candidates: impl IntoIterator<Item = &'a crate::rules::Hyper> + Clone,
    ) -> FixedWords {
        let mut out = FixedWords::NONE;
        let words = (kernel.branch_words.iter().map(|&k| (k, None)))
            .chain(kernel.zero_words.iter().map(|&k| (k, Some(0))))
            .chain(kernel.one_words.iter().map(|&k| (k, Some(1f32.to_bits()))));
        for (k, only) in words.filter(|&(k, _)| k < 16) {
            let mut bits = candidates.clone().into_iter().map(|h| h[k].to_bits());
            if let Some(first) = bits.next() {
                if bits.all(|b| b == first) && only.is_none_or(|v| first == v) {
                    out.0[k] = Some(first);
                }
            }
        }
        out
    }
}

/// One compute pipeline's text and constants, all but its entry point (`main`, the
/// update; `grad_sumsq`, the clipping pre-pass; `measure_pass`, a two-phase rule's first
/// pass share one text).
///
/// The optimizer plans one variant per dispatch ([`crate::Optimizer::kernel_variants`]);
/// the pipeline cache compiles each once per context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelVariant {
    /// The rule family's kernel (e.g. Adam's, shared by AdamW).
    pub kernel: Kernel,
    /// Elements per invocation's vector: 4 (`vec4` loads) or 1.
    pub width: u32,
    /// The rule's state slots per parameter (0..=3).
    pub slots: u32,
    /// Invocations per workgroup.
    pub workgroup: u32,
    /// The gradient's sum of squares is reduced first (clipping, or loss scaling's check).
    pub clip: bool,
    /// Gradients are clamped by value first ([`crate::GradClip::value`] is set; only with
    /// `clip`): a constant of the pipeline, switched when the setting changes.
    pub clip_value: bool,
    /// One piece of one tensor per dispatch: tiles computed, not read from a table.
    pub dense: bool,
    /// Length of the uniform array of per-group scalars (a power of two).
    pub groups: u32,
    /// 8-bit state, or f32 state (`None`).
    pub q8: Option<Q8Kernel>,
    /// Loss scaling: candidates of per-step scalars per slot (0: no loss scaling).
    pub lag: u32,
    /// Element types of the params and the grads.
    pub dtypes: (Dtype, Dtype),
    /// bf16 params without a master copy, rounded stochastically.
    pub sr: bool,
    /// Words of the per-step scalars taken as constants ([`FixedWords::NONE`]: none).
    pub fixed: FixedWords,
    /// The dispatch's bindings may start before its first element (the kernel reads the
    /// shifts from its `Launch`); `false`: they all start at it (shifts are constant 0).
    pub shifted: bool,
    /// A vector may run past its tensor's end (an end that is not a multiple of the
    /// width), so stores are masked per lane; `false`: every lane is live (always at
    /// width 1).
    pub tail: bool,
    /// Every invocation has a whole vector inside the dispatch's range (a dense piece of
    /// whole tiles, no workgroup past the last), so the f32-state update tests no range
    /// and nothing after it runs under a lane mask (lavapipe: ~5% of a minimal Adam
    /// kernel). Implies `!tail`; always `false` with 8-bit state, whose update has no
    /// such constant.
    pub exact: bool,
}

impl KernelVariant {
    /// Binds the f32 master copy of 16-bit params (a ninth storage buffer).
    pub fn mixed(&self) -> bool {
        self.dtypes.0 != Dtype::F32 && !(self.sr && self.dtypes.0 == Dtype::Bf16)
    }

    /// A name unique among variants, e.g. `adam.s2.w4.dense.bf16-f32.q8-m1.clip.g1.wg256`:
    /// kernel, state slots, width, tiles or dense, param-grad element types (`.sr`:
    /// stochastic rounding), state format (`f32`, `q8` or `q8sr` with the signed-slot
    /// mask), features (`plain`, `clip`, `scaler-lag<L>`, `-value` with value clipping),
    /// group count, workgroup size.
    pub fn name(&self) -> String {
        let state = match self.q8 {
            None => "f32".to_string(),
            Some(q) if q.stochastic => format!("q8sr-m{}", q.signed),
            Some(q) => format!("q8-m{}", q.signed),
        };
        let mut features = match (self.clip, self.lag) {
            (false, 0) => "plain".to_string(),
            (true, 0) => "clip".to_string(),
            (_, lag) => format!("scaler-lag{lag}"),
        };
        if self.clip_value {
            features.push_str("-value");
        }
        let dtype = |d: Dtype| match d {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        };
        let mut special = String::new();
        if !self.shifted {
            special.push_str(".unshifted");
        }
        if !self.tail {
            special.push_str(".whole");
        }
        if self.exact {
            special.push_str(".exact");
        }
        if self.fixed != FixedWords::NONE {
            let bits: Vec<u8> = (self
                .fixed
                .0
                .iter()
                .flat_map(|w| w.unwrap_or(0).to_le_bytes()))
            .collect();
            special.push_str(&format!(
                ".fixed{:04x}-{:08x}",
                self.fixed.mask(),
                crc32fast::hash(&bits)
            ));
        }
        format!(
            "{}.s{}.w{}.{}.{}-{}{}.{state}.{features}.g{}.wg{}{special}",
            self.kernel.name,
            self.slots,
            self.width,
            if self.dense { "dense" } else { "tiles" },
            dtype(self.dtypes.0),
            dtype(self.dtypes.1),
            if self.sr { ".sr" } else { "" },
            self.groups,
            self.workgroup
        )
    }

    /// The WGSL as compiled: the overridable constants keep their defaults in the text and
    /// get [`KernelVariant::constants`] from the pipeline.
    pub fn source(&self) -> String {
        let prelude = if self.width == 4 {
            PRELUDE_VEC4
        } else {
            PRELUDE_SCALAR
        };
        let state = if self.q8.is_some() {
            STATE_Q8
        } else {
            STATE_F32
        };
        // Candidates, then a header when loss scaling (lag > 1) or stochastic rounding
        // reads it.
        let lag = self.lag.max(1);
        let groups = self.groups;
        let q8_sr = self.q8.is_some_and(|q| q.stochastic);
        let with_header = lag > 1 || self.sr_params() || q8_sr;
        let hyper_len = groups * lag + with_header as u32;
        let header = if with_header { groups * lag } else { 0 };
        let two_phase = if self.kernel.two_phase { TWO_PHASE } else { "" };
        let param = match self.dtypes.0 {
            Dtype::F32 => PARAM_F32,
            Dtype::Bf16 if self.sr => PARAM_SR_BF16,
            Dtype::Bf16 => PARAM_MASTER_BF16,
            Dtype::F16 => PARAM_MASTER_F16,
        };
        let grad = match self.dtypes.1 {
            Dtype::F32 => GRAD_F32,
            Dtype::Bf16 => GRAD_BF16,
            Dtype::F16 => GRAD_F16,
        };
        format!(
            "{prelude}const GROUPS: u32 = {groups}u;\nconst LAG: u32 = {lag}u;\n\
             const HYPER_LEN: u32 = {hyper_len}u;\nconst HEADER: u32 = {header}u;\n\
             {HALF}\n{param}{grad}\n{COMMON}\n{state}\n{two_phase}\n{}",
            self.kernel.source
        )
    }

    /// The WGSL exactly as it runs, standalone: [`KernelVariant::source`] with every
    /// `override` declaration replaced by a `const` of this variant's value (or of the
    /// text's default where [`KernelVariant::constants`] sets none) (what
    /// `gpu-optim-bench --dump-wgsl` writes; naga validates it without pipeline constants).
    pub fn wgsl(&self) -> String {
        let constants = self.constants();
        let mut out = String::new();
        for line in self.source().split_inclusive('\n') {
            let decl = line.strip_prefix("override ").and_then(|rest| {
                let (name, rest) = rest.split_once(':')?;
                let (ty, default) = rest.split_once('=')?;
                let ty = ty.trim();
                let value = match constants.iter().find(|(n, _)| *n == name.trim()) {
                    // Not set by the pipeline: the text's default.
                    None => default.trim().trim_end_matches(';').trim().to_string(),
                    Some((_, v)) => match ty {
                        "bool" => (*v != 0.0).to_string(),
                        "u32" => format!("{}u", *v as u32),
                        _ => return None,
                    },
                };
                Some(format!("const {}: {ty} = {value};\n", name.trim()))
            });
            match decl {
                Some(d) => out.push_str(&d),
                None => out.push_str(line),
            }
        }
        out
    }

    fn sr_params(&self) -> bool {
        self.sr && self.dtypes.0 == Dtype::Bf16
    }

    /// The values of the pipeline-overridable constants (`override` in the WGSL).
    pub fn constants(&self) -> Vec<(&'static str, f64)> {
        let mut constants = vec![
            ("WG", self.workgroup as f64),
            ("SLOTS", self.slots as f64),
            ("CLIP", self.clip as u32 as f64),
            ("CLIP_VALUE", self.clip_value as u32 as f64),
            ("TWO_PHASE", self.kernel.two_phase as u32 as f64),
            ("DENSE", self.dense as u32 as f64),
            ("SCALER", (self.lag > 0) as u32 as f64),
            ("SHIFTED", self.shifted as u32 as f64),
            ("TAIL", self.tail as u32 as f64),
            ("FIXED", self.fixed.mask() as f64),
        ];
        if self.q8.is_none() {
            constants.push(("EXACT", self.exact as u32 as f64));
        }
        const FW: [&str; 16] = [
            "FW0", "FW1", "FW2", "FW3", "FW4", "FW5", "FW6", "FW7", "FW8", "FW9", "FW10", "FW11",
            "FW12", "FW13", "FW14", "FW15",
        ];
        for (k, w) in self.fixed.0.iter().enumerate() {
            if let Some(bits) = w {
                constants.push((FW[k], *bits as f64));
            }
        }
        if let Some(q) = self.q8 {
            constants.push(("SIGNED", (q.signed & 0xff) as f64));
            constants.push(("Q8_SR", q.stochastic as u32 as f64));
        }
        constants
    }

    /// The finite set of variants of one rule that the WGSL identity and naga tests walk
    /// (`--dump-wgsl` writes the variants the bench's configurations actually run, a few
    /// of these): element types {f32, bf16/bf16, f16/f16, bf16/f32} (bf16
    /// params also rounded stochastically without a master) × state {f32, 8-bit nearest,
    /// 8-bit stochastic} × {plain, clip, clip + loss scaler, each of the two with value
    /// clipping} × groups {1, 2, 8} × width
    /// {1, 4} × {tiles, dense}, where legal (width 1: f32 params, grads and state only;
    /// 8-bit state: not for two-phase rules), at workgroup size 256 and the scaler's lag
    /// under WebGPU's default uniform limit (32 candidates); each generic (nothing fixed,
    /// shifts read, partial vectors masked) and, dense with one group, also with the
    /// rule's branch words fixed to its first step's values, no shifts and no partial
    /// vector, and that with whole tiles (`exact`, f32 state).
    pub fn all_for(rule: &AnyRule) -> Vec<KernelVariant> {
        let kernel = rule.kernel();
        let slots = rule.state_slots().len() as u32;
        let signed = crate::rules::signed_mask(rule);
        let fixed = FixedWords::agreed(&kernel, &[rule.hyper(1)]);
        let dtypes = [
            (Dtype::F32, Dtype::F32, false),
            (Dtype::Bf16, Dtype::Bf16, false),
            (Dtype::Bf16, Dtype::Bf16, true),
            (Dtype::F16, Dtype::F16, false),
            (Dtype::Bf16, Dtype::F32, false),
            (Dtype::Bf16, Dtype::F32, true),
        ];
        let mut out = Vec::new();
        for (p, g, sr) in dtypes {
            for stochastic in [None, Some(false), Some(true)] {
                let q8 = stochastic.map(|stochastic| Q8Kernel { signed, stochastic });
                if q8.is_some() && kernel.two_phase {
                    continue;
                }
                let features = [
                    (false, false, 0),
                    (true, false, 0),
                    (true, true, 0),
                    (true, false, MAX_LAG),
                    (true, true, MAX_LAG),
                ];
                for (clip, clip_value, lag) in features {
                    for groups in [1, 2, 8] {
                        for width in [1, 4] {
                            let narrow = width == 1;
                            if narrow && (q8.is_some() || (p, g) != (Dtype::F32, Dtype::F32)) {
                                continue;
                            }
                            for dense in [false, true] {
                                let generic = KernelVariant {
                                    kernel,
                                    width,
                                    slots,
                                    workgroup: 256,
                                    clip,
                                    clip_value,
                                    dense,
                                    groups,
                                    q8,
                                    lag,
                                    dtypes: (p, g),
                                    sr,
                                    fixed: FixedWords::NONE,
                                    shifted: true,
                                    tail: width == 4,
                                    exact: false,
                                };
                                out.push(generic);
                                // What one group's aligned tensor runs: its branch words
                                // fixed, no shifts, no partial vector.
                                if dense && groups == 1 {
                                    let aligned = KernelVariant {
                                        fixed,
                                        shifted: false,
                                        tail: false,
                                        ..generic
                                    };
                                    out.push(aligned);
                                    // ... and whole tiles (a length a multiple of
                                    // workgroup x width), with f32 state.
                                    if q8.is_none() {
                                        out.push(KernelVariant {
                                            exact: true,
                                            ..aligned
                                        });
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// [`KernelVariant::all_for`] over every rule of [`AnyRule::catalog`], each variant
    /// once (rules of one family with the same slots, e.g. Adam and AdamW, share them).
    pub fn finite_set() -> Vec<KernelVariant> {
        let mut out: Vec<KernelVariant> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for rule in AnyRule::catalog() {
            for v in Self::all_for(&rule) {
                if seen.insert(v) {
                    out.push(v);
                }
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn parse(src: &str) -> naga::Module {
        let module = naga::front::wgsl::parse_str(src)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
        module
    }

    /// One line per variant: name, text length, CRC-32 of the text, constants.
    fn identity_line(v: &KernelVariant) -> String {
        let text = v.source();
        let constants: Vec<String> = v
            .constants()
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        format!(
            "{}\t{}\t{:08x}\t{}",
            v.name(),
            text.len(),
            crc32fast::hash(text.as_bytes()),
            constants.join(",")
        )
    }

    /// Kernel identity: every variant of the finite set has the WGSL text and the
    /// pipeline-overridable constants recorded in tests/fixtures/wgsl_variants.tsv, which
    /// was written from the run-time assembly of 4951a76 (the main before the scheduler
    /// redesign, by the test of commit 6f9ad40) with `GPU_OPTIM_BLESS_WGSL=1`, and blessed
    /// again when the kernels learned fixed words and unshifted bindings (every text
    /// changed: `hyper_of`, the shifts, the `FIXED` overrides), when the step scalars
    /// moved to bind group 1, when `TAIL` made the lane masks a constant, when Adam's
    /// last line took one division instead of two (Kingma & Ba's order), when `EXACT`
    /// let a dense dispatch of whole tiles skip its range test, and when a skipped step
    /// stored its old values instead of returning (both: every f32-state text), and when
    /// value clipping became a constant (`CLIP_VALUE`, new variants) and the pre-pass of
    /// whole tiles dropped its range test (every text), and when the f16 conversions lost
    /// their branches (every text: shaders/half.wgsl is in each), and when the pre-pass
    /// read its tiles per workgroup from `Launch` (every text). A text is
    /// recorded by its length and CRC-32 (the full texts are ~70 MB); a change anywhere
    /// in it changes the CRC except with probability 2^-32. Re-bless only for a change
    /// meant to alter the kernels, and say so in its commit.
    #[test]
    fn wgsl_identity_with_the_recorded_variants() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/wgsl_variants.tsv"
        );
        let lines: Vec<String> = KernelVariant::finite_set()
            .iter()
            .map(identity_line)
            .collect();
        let names: std::collections::HashSet<&str> = lines
            .iter()
            .map(|l| l.split('\t').next().unwrap())
            .collect();
        assert_eq!(names.len(), lines.len(), "variant names collide");
        if std::env::var_os("GPU_OPTIM_BLESS_WGSL").is_some() {
            std::fs::write(path, lines.join("\n") + "\n").unwrap();
        }
        let recorded = std::fs::read_to_string(path).unwrap();
        let recorded: Vec<&str> = recorded.lines().collect();
        assert_eq!(recorded.len(), lines.len(), "number of variants");
        for (got, want) in lines.iter().zip(&recorded) {
            assert_eq!(got, want);
        }
    }

    /// A rule's branch and zero words are the same at every step and lr (a schedule
    /// moves the lr each step): a fixed pipeline is compiled once, not once per step.
    /// Each is a word of `Hyper`, listed once.
    #[test]
    fn fixed_words_stay_the_same_from_step_to_step() {
        for rule in AnyRule::catalog() {
            let kernel = rule.kernel();
            let mut words = [kernel.branch_words, kernel.zero_words, kernel.one_words].concat();
            let n = words.len();
            words.sort_unstable();
            words.dedup();
            assert_eq!(words.len(), n, "{}", rule.name());
            assert!(words.iter().all(|&k| k < 16), "{}", rule.name());
            let first = FixedWords::agreed(&kernel, &[rule.hyper(1)]);
            assert!(first.mask().count_ones() as usize >= kernel.branch_words.len());
            let mut later = rule.clone();
            for t in [2, 3, 10, 1000, 100_000] {
                later.set_lr(rule.lr() * 0.37 / t as f64);
                let h = [rule.hyper(1), later.hyper(t)];
                let both = FixedWords::agreed(&kernel, &h);
                assert_eq!(both, first, "{} at step {t}", rule.name());
            }
        }
    }

    /// Every variant of the finite set, loss scaling's included, is valid WGSL as it runs
    /// (overrides written in as constants), without a device. Variants that differ only in
    /// constants share a text but not their `wgsl()`, so each is parsed.
    #[test]
    fn every_variant_validates_with_naga() {
        let mut seen = std::collections::HashSet::new();
        let set = KernelVariant::finite_set();
        for v in &set {
            let text = v.wgsl();
            assert!(!text.contains("override WG"), "{}", v.name());
            if seen.insert(crc32fast::hash(text.as_bytes())) {
                parse(&text);
            }
        }
        assert!(set.iter().any(|v| v.lag > 0 && v.q8.is_some()));
        // Mixed 16-bit pairs outside the finite set.
        for v in set
            .iter()
            .filter(|v| v.dtypes == (Dtype::Bf16, Dtype::Bf16) && !v.sr)
        {
            for dtypes in [(Dtype::Bf16, Dtype::F16), (Dtype::F16, Dtype::Bf16)] {
                let text = KernelVariant { dtypes, ..*v }.wgsl();
                if seen.insert(crc32fast::hash(text.as_bytes())) {
                    parse(&text);
                }
            }
        }
        // The master accessors bind the master copy where the layout puts it.
        let master = format!("@binding({})", super::super::MASTER_BINDING);
        assert!(PARAM_MASTER_BF16.contains(&master) && PARAM_MASTER_F16.contains(&master));
        parse(include_str!("../../shaders/copy.wgsl"));
        parse(include_str!("../../shaders/reduce.wgsl"));
    }
}
