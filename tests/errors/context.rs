//! The `Context`: upload and download refusals (`LengthMismatch`, `BadRange`, `MissingUsage`),
//! byte ranges that overflow, buffers too large (`TooLarge`), no adapter by that name
//! (`NoAdapter`), and a lost device (`DeviceLost` or `Wgpu` from the next step).

use gpu_optim::*;

use crate::{common, raw_buffer};

#[test]
fn upload_and_download_refusals() {
    let ctx = common::ctx();
    let b = ctx.create_zeroed("b", 8).unwrap();

    let r = ctx.upload(&BufferRange::new(&b, 0, 8), &[1.0; 7]);
    assert!(
        matches!(
            r,
            Err(Error::LengthMismatch {
                got: 7,
                expected: 8,
                ..
            })
        ),
        "{r:?}"
    );
    let r = ctx.upload(&BufferRange::new(&b, 4, 8), &[1.0; 8]);
    assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
    let r = ctx.download(&BufferRange::new(&b, 0, 9));
    assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");

    let no_copy_src = raw_buffer(
        &ctx,
        8,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
    );
    match ctx.download(&BufferRange::whole(&no_copy_src, 8)) {
        Err(Error::MissingUsage { needed, .. }) => {
            assert_eq!(needed, wgpu::BufferUsages::COPY_SRC)
        }
        other => panic!("expected MissingUsage, got {other:?}"),
    }
    let no_copy_dst = raw_buffer(
        &ctx,
        8,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    );
    match ctx.upload(&BufferRange::whole(&no_copy_dst, 8), &[1.0; 8]) {
        Err(Error::MissingUsage { needed, .. }) => {
            assert_eq!(needed, wgpu::BufferUsages::COPY_DST)
        }
        other => panic!("expected MissingUsage, got {other:?}"),
    }

    // Nothing was written by the refusals; the context still works.
    assert_eq!(
        ctx.download(&BufferRange::whole(&b, 8)).unwrap(),
        vec![0.0; 8]
    );
    ctx.upload(&BufferRange::new(&b, 4, 4), &[2.0; 4]).unwrap();
    assert_eq!(
        ctx.download(&BufferRange::whole(&b, 8)).unwrap(),
        vec![0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0]
    );
}

/// A range whose end in bytes does not fit in u64 is out of bounds like any other.
#[test]
fn ranges_whose_byte_end_overflows() {
    let ctx = common::ctx();
    let b = ctx.create_zeroed("b", 8).unwrap();
    let huge = u64::MAX / 4; // (huge + 4) * 4 > u64::MAX
    let r = ctx.upload(&BufferRange::new(&b, huge, 4), &[1.0; 4]);
    assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
    let r = ctx.download(&BufferRange::new(&b, huge, 4));
    assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
    let mut opt = Optimizer::new(&ctx, Sgd::default()).unwrap();
    let r = opt.add_tensor(
        opt.default_group(),
        BufferRange::new(&b, huge, 4),
        BufferRange::new(&b, 0, 4),
    );
    assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
}

/// A buffer larger than the device allows is refused (the code's chosen variant is
/// TooLarge), also when its size in bytes does not fit in usize.
#[test]
fn buffers_larger_than_the_address_space() {
    let ctx = common::ctx();
    let r = ctx.create_zeroed("huge", usize::MAX / 2);
    assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");
    let r = Arena::new(&ctx, &[usize::MAX / 2]);
    assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");
}

/// Fault: a buffer over `max_buffer_size` was reported as out of memory; it is a limit.
#[test]
fn buffer_larger_than_max_buffer_size() {
    let ctx = common::ctx();
    let too_big = (ctx.limits().max_buffer_size / 4 + 1) as usize;
    let r = ctx.create_zeroed("too big", too_big);
    match &r {
        Err(e @ Error::TooLarge { size, limit, .. }) => {
            assert!(size > limit);
            assert!(e.to_string().contains("max_buffer_size"), "{e}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // The context still works.
    let b = ctx.create_buffer("fine", &[1.0, 2.0]).unwrap();
    assert_eq!(
        ctx.download(&BufferRange::whole(&b, 2)).unwrap(),
        vec![1.0, 2.0]
    );
}

#[test]
fn no_adapter_by_that_name() {
    let r = Context::with_options(&ContextOptions {
        adapter_name: Some("no-such-adapter-xyz".into()),
        ..Default::default()
    });
    match r {
        Err(e @ Error::NoAdapter { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("mesa-vulkan-drivers"), "{msg}");
            assert!(msg.contains("no-such-adapter-xyz"), "{msg}");
        }
        Err(other) => panic!("expected NoAdapter, got {other:?}"),
        Ok(ctx) => panic!("expected NoAdapter, got {ctx:?}"),
    }
    // The adapters that do exist are still found.
    common::ctx();
}

/// A lost device (here: destroyed on purpose) is reported as an error by the next step,
/// never a panic, and the step count does not advance.
#[test]
fn device_loss_is_an_error() {
    let ctx = common::ctx();
    let arena = Arena::new(&ctx, &[1000]).unwrap();
    let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    opt.step().unwrap();
    ctx.wait().unwrap();
    ctx.device().destroy();
    let err = opt.step().unwrap_err();
    assert!(
        matches!(err, Error::DeviceLost(_) | Error::Wgpu { .. }),
        "unexpected error {err:?}"
    );
    assert_eq!(opt.step_count(), 1);
    assert!(ctx.download(&arena.param(0)).is_err());
}
