//! The CPU reference: `cpu_step` and `CpuOptimizer::step` refuse params, grads and state
//! slots of mismatched lengths with `LengthMismatch`, touch nothing, and step after.

use gpu_optim::*;

#[test]
fn cpu_step_length_mismatches() {
    let rule = Adam::default();
    let mut params = vec![0.5f32; 4];
    let mut state = vec![vec![0.0f32; 4]; 2];

    let r = cpu_step(&rule, 1, &mut params, &[0.1; 3], &mut state);
    assert!(
        matches!(
            r,
            Err(Error::LengthMismatch {
                got: 3,
                expected: 4,
                ..
            })
        ),
        "{r:?}"
    );
    let mut one_slot = vec![vec![0.0f32; 4]];
    let r = cpu_step(&rule, 1, &mut params, &[0.1; 4], &mut one_slot);
    assert!(
        matches!(
            r,
            Err(Error::LengthMismatch {
                got: 1,
                expected: 2,
                ..
            })
        ),
        "{r:?}"
    );
    let mut short_slot = vec![vec![0.0f32; 4], vec![0.0f32; 5]];
    let r = cpu_step(&rule, 1, &mut params, &[0.1; 4], &mut short_slot);
    match r {
        Err(Error::LengthMismatch {
            what,
            got: 5,
            expected: 4,
        }) => assert!(what.contains("exp_avg_sq"), "{what}"),
        other => panic!("{other:?}"),
    }
    // Nothing was touched by the refused calls.
    assert_eq!(params, vec![0.5; 4]);
    assert_eq!(state, vec![vec![0.0; 4]; 2]);
    assert_eq!(one_slot, vec![vec![0.0; 4]]);

    // Rules without state: an extra slot is a mismatch too.
    let mut extra = vec![vec![0.0f32; 4]];
    let r = cpu_step(&Sgd::default(), 1, &mut params, &[0.1; 4], &mut extra);
    assert!(
        matches!(
            r,
            Err(Error::LengthMismatch {
                got: 1,
                expected: 0,
                ..
            })
        ),
        "{r:?}"
    );

    // CpuOptimizer::step: refused, step count and params unchanged, then a valid step.
    let mut cpu = CpuOptimizer::new(Adam::default(), 4).unwrap();
    let r = cpu.step(&mut params, &[0.1; 5]);
    assert!(matches!(r, Err(Error::LengthMismatch { .. })), "{r:?}");
    let mut short = vec![0.5f32; 3];
    let r = cpu.step(&mut short, &[0.1; 3]);
    assert!(matches!(r, Err(Error::LengthMismatch { .. })), "{r:?}");
    assert_eq!(cpu.t, 0);
    assert_eq!(params, vec![0.5; 4]);
    cpu.step(&mut params, &[0.1; 4]).unwrap();
    assert_eq!(cpu.t, 1);
    assert!(params.iter().all(|&p| p < 0.5));
}
