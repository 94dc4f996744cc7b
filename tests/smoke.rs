mod common;
use gpu_optim::*;
#[test]
fn smoke() {
    let ctx = common::ctx();
    eprintln!("{:?}", ctx.adapter_info());
    for rule in AnyRule::catalog() {
        for len in [1usize, 3, 1025, 100_003] {
            let r = verify(&ctx, &VerifyPlan::flat(rule.clone(), len, 20)).unwrap();
            eprintln!("len {len}: {r}");
        }
    }
}
