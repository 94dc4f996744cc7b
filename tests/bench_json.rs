//! The bench binary's `--json` output validates against tests/report.schema.json, and
//! `--plot` writes an SVG. A small run: tiny sizes, three rules, no model. `--dump-wgsl`
//! writes valid WGSL, one file per kernel variant. The header says what the device is
//! (GL, no adapter), and a slow device's default run is trimmed and says so.

use serde_json::Value;

/// The subset of JSON Schema the report schema uses: type (one or a list), required,
/// properties, items, enum. Returns the paths that fail.
fn validate(schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "integer" => v.is_u64() || v.is_i64(),
            "number" => v.is_number(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            errors.push(format!("{path}: expected {types:?}, got {v}"));
            return;
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum") {
        if !allowed.contains(v) {
            errors.push(format!("{path}: {v} not in {allowed:?}"));
        }
    }
    // As in JSON Schema, `required` constrains objects only (a nullable object may be null).
    if let (Some(Value::Array(req)), true) = (schema.get("required"), v.is_object()) {
        for k in req.iter().filter_map(|k| k.as_str()) {
            if v.get(k).is_none() {
                errors.push(format!("{path}: missing {k}"));
            }
        }
    }
    if let (Some(Value::Object(props)), Value::Object(obj)) = (schema.get("properties"), v) {
        for (k, s) in props {
            if let Some(x) = obj.get(k) {
                validate(s, x, &format!("{path}.{k}"), errors);
            }
        }
    }
    if let (Some(items), Value::Array(arr)) = (schema.get("items"), v) {
        for (i, x) in arr.iter().enumerate() {
            validate(items, x, &format!("{path}[{i}]"), errors);
        }
    }
}

fn schema() -> Value {
    serde_json::from_str(include_str!("report.schema.json")).unwrap()
}

/// The `--json` report at `path`, asserted valid against tests/report.schema.json.
fn valid_report(path: &std::path::Path) -> Value {
    let report: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut errors = Vec::new();
    validate(&schema(), &report, "$", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}");
    report
}

/// Runs the bench binary with `args`; asserts it exited 0 and returns its stdout.
fn run_bench(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpu-optim-bench"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn json_report_matches_schema_and_plot_is_svg() {
    let dir = std::env::temp_dir().join(format!("gpu-optim-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, svg) = (dir.join("r.json"), dir.join("r.svg"));
    let stdout = run_bench(&[
        "--sizes",
        "2^12,2^14",
        "--rules",
        "sgd,adam-amsgrad,lion",
        "--reps",
        "2",
        "--verify-steps",
        "3",
        "--no-model",
        "--no-cpu",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("roofline") && stdout.contains("adam-amsgrad"),
        "{stdout}"
    );

    let report = valid_report(&json);
    // Two sizes x three rules, verified rules that passed, bytes/param from the rule.
    assert_eq!(report["rules"].as_array().unwrap().len(), 6);
    // Lion with 8-bit state: verified, a quarter of the f32 state, the MLP trained.
    let s8 = &report["state8"][0];
    assert_eq!(s8["rule"], "lion");
    assert_eq!(s8["verified"], true);
    assert!((s8["state_bytes_per_param"].as_f64().unwrap() - 1.015625).abs() < 1e-9);
    assert!(s8["mlp_loss_ratio"].as_f64().unwrap().is_finite());
    assert_eq!(report["roofline"].as_array().unwrap().len(), 2);
    assert!(report["verify"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["passed"] == true));
    assert_eq!(report["rules"][1]["bytes_per_param"], 36);
    // The machine: a software device's figures are its CPU's.
    let machine = &report["machine"];
    assert!(
        !machine["cpu_model"].as_str().unwrap().is_empty(),
        "{machine}"
    );
    assert!(machine["cpu_cores"].as_u64().unwrap() >= 1, "{machine}");
    assert_eq!(machine["os"], std::env::consts::OS);
    assert_eq!(machine["arch"], std::env::consts::ARCH);
    let adapter = &report["adapter"];
    assert!(
        !adapter["backend"].as_str().unwrap().is_empty(),
        "{adapter}"
    );
    if adapter["software"] == true {
        let cpu = format!("cpu: {}", machine["cpu_model"].as_str().unwrap());
        assert!(stdout.contains(&cpu), "no `{cpu}` in {stdout}");
    }
    // Sizes and repetitions given: the time budget keeps them exactly.
    assert_eq!(report["reps"], 2);
    let budget = report["time_budget"].as_array().unwrap();
    assert!(
        budget.iter().all(|n| !n.as_str().unwrap().contains("sizes")
            && !n.as_str().unwrap().contains("repetitions")),
        "{budget:#?}"
    );
    // The generality tax: only sgd of these rules has a minimal anchor kernel; one row per
    // size, bit-exact with the crate's step, with a finite ratio.
    assert!(stdout.contains("generality tax"), "{stdout}");
    let anchors = report["anchors"].as_array().unwrap();
    assert_eq!(anchors.len(), 2, "{anchors:#?}");
    for a in anchors {
        assert_eq!(a["rule"], "sgd", "{a}");
        assert_eq!(a["bit_exact"], true, "{a}");
        assert_eq!(a["max_ulps"], 0, "{a}");
        assert!(a["ratio"]["median"].as_f64().unwrap() > 0.0, "{a}");
    }
    // Its noise floor: sgd's minimal kernel against itself, one row per size.
    let noise = report["anchor_noise"].as_array().unwrap();
    assert_eq!(noise.len(), 2, "{noise:#?}");
    for a in noise {
        assert_eq!(a["rule"], "sgd", "{a}");
        assert_eq!(a["reps"], anchors[0]["reps"], "{a}");
        assert!(a["ratio"]["median"].as_f64().unwrap() > 0.0, "{a}");
    }
    assert!(stdout.contains("sgd itself"), "{stdout}");

    // The validator itself rejects a broken report.
    let mut broken = report.clone();
    broken["rules"][0]["gbps"] = Value::String("fast".into());
    broken.as_object_mut().unwrap().remove("adapter");
    let mut errors = Vec::new();
    validate(&schema(), &broken, "$", &mut errors);
    assert_eq!(errors.len(), 2, "{errors:#?}");

    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("roofline"),
        "not an SVG plot"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `--dump-wgsl DIR` writes one file per kernel variant Adam runs in the bench's
/// configurations, named after the variant, each valid WGSL as it runs (no `override`
/// left), among them loss scaling's and both dispatch kinds; it times nothing.
#[test]
fn dump_wgsl_writes_every_variant_as_valid_wgsl() {
    let dir = std::env::temp_dir().join(format!("gpu-optim-dump-wgsl-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let stdout = run_bench(&["--rules", "adam", "--dump-wgsl", dir.to_str().unwrap()]);
    assert!(!stdout.contains("roofline"), "benchmarked: {stdout}");
    let listed: Vec<&str> = stdout.lines().filter(|l| l.ends_with(".wgsl")).collect();
    let summary = format!("{} variants written to {}", listed.len(), dir.display());
    assert!(stdout.contains(&summary), "no `{summary}` in {stdout}");

    let mut names = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let variant = name.strip_suffix(".wgsl").expect("only .wgsl files");
        assert!(
            listed.contains(&path.to_str().unwrap()),
            "{name} not listed"
        );
        let src = std::fs::read_to_string(&path).unwrap();
        assert!(!src.contains("override "), "{name}: an override left");
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
        assert!(variant.starts_with("adam."), "{name}");
        assert!(names.insert(variant.to_string()), "{name} twice");
    }
    assert_eq!(names.len(), listed.len(), "{stdout}");
    for part in [".scaler-lag", ".dense.", ".tiles."] {
        assert!(
            names.iter().any(|n| n.contains(part)),
            "no {part} variant among {names:#?}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Regression: at small sizes the default K is 64 steps per submission, more than loss
/// scaling's 32 candidate scalars per slot cover, and the GradScaler feature row made the
/// whole run exit 2 ("needs 65 candidate scalars ... the uniform limit allows 32"). Its
/// rows now run at most what the scaler accepts and report the K they used.
#[test]
fn small_sizes_with_default_steps_do_not_fail_on_the_scaler_row() {
    let dir = std::env::temp_dir().join(format!("gpu-optim-small-k-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("r.json");
    run_bench(&[
        "--rules",
        "adam",
        "--sizes",
        "2^12",
        "--reps",
        "1",
        "--verify-steps",
        "1",
        "--no-model",
        "--no-cpu",
        "--json",
        json.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // Adam's minimal anchor kernel: bit-exact with the crate's step, timed at this size.
    let anchors = report["anchors"].as_array().unwrap();
    assert_eq!(anchors.len(), 1, "{anchors:#?}");
    assert_eq!(anchors[0]["rule"], "adam");
    assert_eq!(anchors[0]["bit_exact"], true, "{anchors:#?}");
    assert_eq!(anchors[0]["steps_per_submission"], 64);
    let features = report["features"].as_array().unwrap();
    assert_eq!(features.len(), 5, "{features:#?}");
    for f in features {
        let k = f["steps_per_submission"].as_u64().unwrap();
        if f["feature"].as_str().unwrap().contains("GradScaler") {
            assert!((1..=31).contains(&k), "{f}");
        } else {
            assert_eq!(k, 64, "{f}");
        }
        // Timed alternately with a plain step: at least 7 repetitions whatever --reps says,
        // the ratio within its own per-repetition range.
        assert!(f["reps"].as_u64().unwrap() >= 7, "{f}");
        let r = &f["over_plain"];
        let (lo, mid, hi) = (r["min"].as_f64(), r["median"].as_f64(), r["max"].as_f64());
        assert!(lo <= mid && mid <= hi && lo.unwrap() > 0.0, "{f}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A slow device's default run (no --sizes, --reps, --steps or --full) is trimmed by the
/// time budget, and says so on stdout and in the JSON; on a GPU nothing is trimmed.
#[test]
fn default_run_on_a_slow_device_is_trimmed_and_says_so() {
    let dir = std::env::temp_dir().join(format!("gpu-optim-budget-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, svg) = (dir.join("r.json"), dir.join("r.svg"));
    let stdout = run_bench(&[
        "--rules",
        "sgd",
        "--verify-steps",
        "1",
        "--no-cpu",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let adapter = &report["adapter"];
    let slow = adapter["software"] == true || adapter["backend"] == "Gl";
    let budget: Vec<&str> = report["time_budget"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let sizes: Vec<u64> = report["roofline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["params"].as_u64().unwrap())
        .collect();
    if slow {
        assert!(stdout.contains("time budget: "), "{stdout}");
        assert!(stdout.contains("--full"), "{stdout}");
        for note in &budget {
            assert!(stdout.contains(note), "`{note}` not on stdout: {stdout}");
        }
        assert!(budget.iter().any(|n| n.contains("2^22")), "{budget:#?}");
        assert_eq!(sizes, [1 << 16, 1 << 20, 1 << 22]);
        assert_eq!(report["reps"], 3);
        assert!(report["model"].is_null());
        // K = 2^22 / params, at most 64.
        let k: Vec<u64> = report["steps_per_submission"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_u64().unwrap())
            .collect();
        assert_eq!(k, [64, 4, 1]);
    } else {
        assert!(budget.is_empty(), "{budget:#?}");
        assert!(!stdout.contains("time budget"), "{stdout}");
        assert_eq!(sizes.len(), 4);
    }
    // The plot of several sizes labels only powers of two on its x axis.
    let svg = std::fs::read_to_string(&svg).unwrap();
    let texts: Vec<&str> = svg.lines().collect();
    for n in &sizes {
        let label = format!("2^{}", n.trailing_zeros());
        let count = texts.iter().filter(|l| **l == label).count();
        assert_eq!(count, 1, "{label} in {svg}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// One size: the plot is a bar per rule with the roofline as a line across them, its
/// value in the legend, instead of a line through a single point.
#[test]
fn one_size_plot_has_a_bar_per_rule_and_the_roofline() {
    let dir = std::env::temp_dir().join(format!("gpu-optim-one-size-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, svg) = (dir.join("r.json"), dir.join("r.svg"));
    run_bench(&[
        "--sizes",
        "2^14",
        "--rules",
        "sgd,adam,lion",
        "--reps",
        "1",
        "--verify-steps",
        "1",
        "--no-model",
        "--no-cpu",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.contains("2^14 parameters"), "{svg}");
    assert!(svg.contains("roofline (best copy) "), "{svg}");
    let texts: Vec<&str> = svg.lines().collect();
    for rule in ["sgd", "adam", "lion"] {
        assert!(texts.contains(&rule), "no {rule} label in {svg}");
    }
    assert_eq!(svg.matches("% of roofline").count(), 3, "{svg}");
    std::fs::remove_dir_all(&dir).ok();
}

/// No adapter matches: a clear message, what wgpu does see and what to install, exit
/// status 2, no panic.
#[test]
fn no_adapter_is_a_clear_error_not_a_panic() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpu-optim-bench"))
        .args(["--adapter", "no-such-adapter-anywhere", "--rules", "sgd"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("no GPU adapter found"), "{stderr}");
    assert!(stderr.contains("mesa-vulkan-drivers"), "{stderr}");
    assert!(stderr.contains("wgpu sees"), "{stderr}");
}

/// wgpu's GL backend, where this machine has one (Mesa's llvmpipe through EGL): the bench
/// says what it found, that it is slow, and what to install instead. `--dump-wgsl` stops
/// after the header, so nothing is timed on GL.
#[test]
fn gl_backend_says_what_it_found_and_what_to_install() {
    let list = run_bench(&["--backend", "gl", "--list-adapters"]);
    if list.trim().is_empty() {
        eprintln!("no GL adapter here; skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("gpu-optim-gl-{}", std::process::id()));
    let stdout = run_bench(&[
        "--backend",
        "gl",
        "--rules",
        "sgd",
        "--dump-wgsl",
        dir.to_str().unwrap(),
    ]);
    for words in [
        "WARNING: this run is on wgpu's GL backend: ",
        "sudo apt install mesa-vulkan-drivers",
        "--backend vulkan",
        "Metal",
    ] {
        assert!(stdout.contains(words), "no `{words}` in {stdout}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The model section without GPT-2 (trimmed by a software device's budget, or skipped by
/// `--rules`): the mixed-size sweep over every tensor count, each row with both timings,
/// its dispatches and its preparation time, and the host cost against an empty submission.
#[test]
fn mixed_size_sweep_and_host_cost_are_reported() {
    let dir = std::env::temp_dir().join(format!("gpu-optim-sweep-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("r.json");
    let stdout = run_bench(&[
        "--sizes",
        "2^12",
        "--rules",
        "sgd",
        "--reps",
        "1",
        "--verify-steps",
        "2",
        "--no-cpu",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(stdout.contains("many small tensors"), "{stdout}");
    assert!(stdout.contains("host cost of step()"), "{stdout}");
    let report = valid_report(&json);
    let rows = report["mixed_sizes"].as_array().unwrap();
    let counts: Vec<u64> = rows
        .iter()
        .map(|r| r["tensors"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [10, 100, 1000, 5000, 20000]);
    for r in rows {
        let (t, params) = (
            r["tensors"].as_u64().unwrap(),
            r["params"].as_u64().unwrap(),
        );
        assert!(params >= 64 * t && params <= 4063 * t, "{r}");
        assert!(r["dispatches"].as_u64().unwrap() >= 1, "{r}");
        for k in ["batched", "flat"] {
            assert!(r[k]["median"].as_f64().unwrap() > 0.0, "{r}");
        }
        assert!(r["prepare_s"].as_f64().unwrap() > 0.0, "{r}");
        // The preparation ratio to the row before, alternating; none for the first row.
        match t {
            10 => assert!(r["prepare_vs_previous"].is_null(), "{r}"),
            _ => assert!(
                r["prepare_vs_previous"]["median"].as_f64().unwrap() > 0.0,
                "{r}"
            ),
        }
        // --reps 1, but the gate's statistic takes at least 7.
        assert_eq!(r["reps"], 7, "{r}");
    }
    let h = &report["host_cost"];
    assert_eq!(h["tensors"], 148);
    // The gate's statistic: per-pair ratios of a step and an empty pass, timed alternately.
    assert_eq!(h["pairs"], 100, "{h}");
    for k in [
        "step_k1",
        "step_k8",
        "empty_submit",
        "k1_over_empty",
        "empty_back_to_back",
    ] {
        let (lo, mid, hi) = (
            h[k]["min"].as_f64().unwrap(),
            h[k]["median"].as_f64().unwrap(),
            h[k]["max"].as_f64().unwrap(),
        );
        assert!(0.0 < lo && lo <= mid && mid <= hi, "{k}: {h}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The bench's output for `args` on a short sgd run that they should refuse.
fn refused(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gpu-optim-bench"))
        .args(args)
        .args(["--rules", "sgd", "--no-model", "--no-cpu"])
        .output()
        .unwrap()
}

/// Fault (found feeding the bench a hurried user's input): `--sizes 0` panicked dividing by
/// zero, `--reps 0` panicked taking the median of no samples, and `--verify-steps 0`
/// printed "ok" for a check that compared nothing. Each is now refused with a message
/// naming the flag, exit code 2 (clap's) or 1, and no panic.
#[test]
fn zero_sizes_reps_and_verify_steps_are_refused_not_panicked() {
    let cases: [(&[&str], &str); 4] = [
        (&["--sizes", "0"], "size"),
        (&["--sizes", "2^12,0"], "size"),
        (&["--reps", "0"], "--reps"),
        (&["--verify-steps", "0"], "--verify-steps"),
    ];
    for (args, names) in cases {
        let out = refused(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.contains(names), "{args:?}: {stderr}");
        assert!(
            stderr.contains(" 0"),
            "{args:?} does not name the value: {stderr}"
        );
    }
}

/// Faults a newcomer found: `--steps 2000` and `--sizes 2^40` failed only after the
/// header, with the library's words (`steps_per_submission`, a buffer's label) and no
/// flag; `--sizes abc` said "bad size abc" without the format; `--workgroup 4096` ran at
/// 1024 and said nothing. Each is now refused, naming the flag or the limit, and the
/// oversized runs time nothing.
#[test]
fn out_of_range_steps_sizes_and_workgroup_are_refused_by_name() {
    let cases: [(&[&str], &[&str]); 4] = [
        (&["--steps", "2000"], &["--steps", "2000", "1024"]),
        (&["--sizes", "abc"], &["--sizes", "abc", "2^k"]),
        (&["--sizes", "2^40"], &["--sizes 2^40", "max_buffer_size"]),
        (
            &["--workgroup", "4096"],
            &["4096", "max_compute_invocations_per_workgroup"],
        ),
    ];
    for (args, names) in cases {
        let out = refused(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        for name in names {
            assert!(
                stderr.contains(name),
                "{args:?} does not say {name}: {stderr}"
            );
        }
        assert!(
            !stdout.contains("roofline"),
            "{args:?} timed something: {stdout}"
        );
    }
}

/// Fault (found the same way): `--json` or `--plot` into a missing directory, or onto a
/// directory, failed only after the whole run, with a bare OS error that named no flag;
/// a missing `--torch-json` file likewise. Now each fails before anything is timed, and
/// the message names the flag and the path.
#[test]
fn bad_paths_fail_before_the_run_and_name_their_flag() {
    let missing = std::env::temp_dir().join("gpu-optim-no-such-dir/x/r.json");
    let dir = std::env::temp_dir();
    let cases = [
        ("--json", missing.clone()),
        ("--plot", missing.clone()),
        ("--plot", dir.clone()),
        ("--json", dir),
        ("--torch-json", missing),
    ];
    for (flag, path) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpu-optim-bench"))
            .args([flag, path.to_str().unwrap()])
            .args([
                "--sizes",
                "2^12",
                "--rules",
                "sgd",
                "--no-model",
                "--no-cpu",
            ])
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(!out.status.success(), "{flag} {path:?} ran");
        let named = format!("{flag} {}", path.display());
        assert!(stderr.contains(&named), "{flag}: {stderr}");
        assert!(
            !stdout.contains("rules"),
            "{flag}: timed before failing: {stdout}"
        );
    }
}
