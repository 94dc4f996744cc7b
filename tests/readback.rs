//! The read-back future (`Context::read_back_async`, `map_read_async`, `download_async`,
//! `download_as_async`) and the blocking forms built on it: same bytes both ways, driven by
//! a device poll plus a manual poll of the future, independent read-backs in flight at
//! once, dropped futures leak nothing, refusals before anything is submitted.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Poll, Wake, Waker};

use gpu_optim::{BufferRange, Context, Dtype, Error};

/// One poll of `f` with `waker`, without touching the device.
fn poll_once<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut std::task::Context::from_waker(waker))
}

/// A waker that counts its wakes; its `Arc`'s strong count tells who still holds it.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<Counting>, Waker) {
    let c = Arc::new(Counting::default());
    (c.clone(), Waker::from(c))
}

fn wakes(c: &Counting) -> usize {
    c.0.load(Ordering::SeqCst)
}

/// Natively: a device poll runs the map callbacks, then the future is polled by hand.
fn drive<F: Future + Unpin>(ctx: &Context, f: &mut F) -> F::Output {
    for _ in 0..10_000 {
        ctx.device().poll(wgpu::PollType::Poll).unwrap();
        if let Poll::Ready(r) = poll_once(f, Waker::noop()) {
            return r;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("the read-back did not complete after 10 000 device polls");
}

fn floats(n: usize, base: f32) -> Vec<f32> {
    (0..n).map(|i| base + i as f32 * 0.5).collect()
}

fn assert_send_static<T: Send + 'static>(_: &T) {}

#[test]
fn async_and_blocking_read_the_same_bytes() {
    let ctx = common::ctx();
    let data = floats(64, -3.0);
    let b = ctx.create_buffer("b", &data).unwrap();

    let blocking = ctx.download_bytes(&b, 16, 64).unwrap();
    let mut fut = ctx.read_back_async(&b, 16, 64);
    assert_send_static(&fut);
    assert!(poll_once(&mut fut, Waker::noop()).is_pending(), "{fut:?}");
    ctx.wait().unwrap();
    let bytes = pollster::block_on(fut).unwrap();
    assert_eq!(bytes, blocking);
    assert_eq!(bytes, bytemuck::cast_slice::<f32, u8>(&data[4..20]));

    // f32 elements: download_async against download.
    let r = BufferRange::new(&b, 5, 40);
    let fut = ctx.download_async(&r);
    assert_send_static(&fut);
    ctx.wait().unwrap();
    assert_eq!(pollster::block_on(fut).unwrap(), ctx.download(&r).unwrap());
    assert_eq!(ctx.download(&r).unwrap(), data[5..45]);

    // 16-bit elements at an odd element offset (a range starting inside a 4-byte word).
    for dtype in [Dtype::F16, Dtype::Bf16] {
        let h = ctx.create_zeroed("h", 16).unwrap();
        let r = BufferRange::new(&h, 3, 7);
        let vals = [1.0, -2.0, 0.5, 3.0, 0.25, -8.0, 65.0];
        ctx.upload_as(&r, dtype, &vals).unwrap();
        let mut fut = ctx.download_as_async(&r, dtype);
        let got = drive(&ctx, &mut fut).unwrap();
        assert_eq!(got, vals, "{dtype:?}");
        assert_eq!(got, ctx.download_as(&r, dtype).unwrap(), "{dtype:?}");
    }

    // An empty read resolves at once, without the device.
    let mut fut = ctx.read_back_async(&b, 0, 0);
    assert_eq!(
        poll_once(&mut fut, Waker::noop()).map(Result::unwrap),
        Poll::Ready(vec![])
    );
}

#[test]
fn device_poll_then_manual_poll_completes_the_future() {
    let ctx = common::ctx();
    let data = floats(1000, 7.0);
    let b = ctx.create_buffer("b", &data).unwrap();
    let mut fut = ctx.read_back_async(&b, 0, 4000);
    // The future never polls the device itself: without a device poll it stays pending.
    for _ in 0..3 {
        assert!(poll_once(&mut fut, Waker::noop()).is_pending());
    }
    let bytes = drive(&ctx, &mut fut).unwrap();
    assert_eq!(bytemuck::cast_slice::<u8, f32>(&bytes), &data[..]);
    // Polled again after it completed: an error, not a panic.
    assert!(matches!(
        poll_once(&mut fut, Waker::noop()),
        Poll::Ready(Err(Error::Readback(_)))
    ));

    let mut fut = ctx.download_async(&BufferRange::new(&b, 10, 20));
    assert_eq!(drive(&ctx, &mut fut).unwrap(), data[10..30]);
}

#[test]
fn two_read_backs_in_flight_resolve_independently() {
    let ctx = common::ctx();
    let (da, db) = (floats(32, 1.0), floats(48, -100.0));
    let a = ctx.create_buffer("a", &da).unwrap();
    let b = ctx.create_buffer("b", &db).unwrap();
    let (ca, wa) = counting();
    let (cb, wb) = counting();
    let mut fa = ctx.read_back_async(&a, 0, 128);
    assert!(poll_once(&mut fa, &wa).is_pending());
    // Starting b polls the device once (non-blocking), which may already complete a.
    let mut fb = ctx.download_async(&BufferRange::new(&b, 8, 40));
    assert!(poll_once(&mut fb, &wb).is_pending());
    assert_eq!(wakes(&cb), 0);

    ctx.wait().unwrap();
    // Each map callback woke its own task, once.
    assert_eq!((wakes(&ca), wakes(&cb)), (1, 1));
    // Taken in the other order than started.
    match poll_once(&mut fb, &wb) {
        Poll::Ready(r) => assert_eq!(r.unwrap(), db[8..48]),
        Poll::Pending => panic!("b pending after wait"),
    }
    match poll_once(&mut fa, &wa) {
        Poll::Ready(r) => assert_eq!(bytemuck::cast_slice::<u8, f32>(&r.unwrap()), &da[..]),
        Poll::Pending => panic!("a pending after wait"),
    }

    // Two of the same buffer: one completed and dropped unread, the other still read.
    let f1 = ctx.read_back_async(&a, 0, 16);
    let f2 = ctx.read_back_async(&a, 16, 16);
    ctx.wait().unwrap();
    drop(f1);
    assert_eq!(
        bytemuck::cast_slice::<u8, f32>(&pollster::block_on(f2).unwrap()),
        &da[4..8]
    );
}

#[test]
fn a_future_dropped_before_completion_leaks_nothing() {
    let ctx = common::ctx();
    let data = floats(256, 0.0);
    let b = ctx.create_buffer("b", &data).unwrap();

    let scope = ctx.device().push_error_scope(wgpu::ErrorFilter::Validation);
    // Dropped while the map is pending: the callback still runs (finding nobody waiting)
    // and lets go of the waker it was given.
    let (c, w) = counting();
    let mut fut = ctx.read_back_async(&b, 0, 1024);
    assert!(poll_once(&mut fut, &w).is_pending());
    assert_eq!(Arc::strong_count(&c), 3); // c, w and the future's slot
    drop(fut);
    ctx.wait().unwrap();
    drop(w);
    assert_eq!(Arc::strong_count(&c), 1, "the map callback kept the waker");

    // Dropped after the map completed, unread; and many dropped at once.
    let fut = ctx.download_async(&BufferRange::new(&b, 0, 256));
    ctx.wait().unwrap();
    drop(fut);
    let futs: Vec<_> = (0..64)
        .map(|i| ctx.read_back_async(&b, i * 16, 16))
        .collect();
    drop(futs);
    ctx.wait().unwrap();

    let err = pollster::block_on(scope.pop());
    assert!(err.is_none(), "{err:?}");

    // The context still reads.
    assert_eq!(ctx.download(&BufferRange::new(&b, 0, 256)).unwrap(), data);
    let mut fut = ctx.read_back_async(&b, 0, 8);
    assert_eq!(
        bytemuck::cast_slice::<u8, f32>(&drive(&ctx, &mut fut).unwrap()),
        &data[..2]
    );
}

/// A MAP_READ buffer the caller copies into, mapped without a staging buffer: unmapped
/// after each read (so it is reused), and after a dropped one (its pending map aborted).
#[test]
fn map_read_reuses_the_callers_buffer() {
    let ctx = common::ctx();
    let src = ctx.create_zeroed("src", 8).unwrap();
    let dst = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("ack"),
        size: 32,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let copy = |k: f32| {
        ctx.upload(&BufferRange::whole(&src, 8), &floats(8, k))
            .unwrap();
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&src, 0, &dst, 0, 32);
        ctx.queue().submit([enc.finish()]);
    };
    // wgpu errors outside gpu-optim's own scopes (a copy into a buffer still mapped, an
    // unmap of one not mapped) would only be printed: catch them here.
    let scope = ctx.device().push_error_scope(wgpu::ErrorFilter::Validation);
    for k in 0..3 {
        let k = k as f32;
        copy(k);
        let mut fut = ctx.map_read_async(&dst, 8, 16);
        let got = drive(&ctx, &mut fut).unwrap();
        assert_eq!(bytemuck::cast_slice::<u8, f32>(&got), &floats(8, k)[2..6]);
        // Dropped while its map is pending: the map is aborted, the buffer takes the
        // next copy.
        copy(10.0 + k);
        drop(ctx.map_read_async(&dst, 0, 32));
        copy(20.0 + k);
        let mut fut = ctx.map_read_async(&dst, 0, 32);
        let got = drive(&ctx, &mut fut).unwrap();
        assert_eq!(
            bytemuck::cast_slice::<u8, f32>(&got),
            &floats(8, 20.0 + k)[..]
        );
        // Dropped mapped, unread: unmapped (the next iteration copies into it).
        copy(30.0 + k);
        let fut = ctx.map_read_async(&dst, 0, 32);
        ctx.wait().unwrap();
        drop(fut);
    }
    copy(5.0);
    let fut = ctx.map_read_async(&dst, 0, 32);
    ctx.wait().unwrap();
    let got = pollster::block_on(fut).unwrap();
    assert_eq!(bytemuck::cast_slice::<u8, f32>(&got), &floats(8, 5.0)[..]);
    let err = pollster::block_on(scope.pop());
    assert!(err.is_none(), "{err:?}");

    // Refusals: no MAP_READ; offset not a multiple of 8; past the end.
    let mut r = ctx.map_read_async(&src, 0, 16);
    assert!(matches!(
        poll_once(&mut r, Waker::noop()),
        Poll::Ready(Err(Error::MissingUsage { needed, .. })) if needed == wgpu::BufferUsages::MAP_READ
    ));
    for (offset, size) in [(4, 8), (0, 6), (16, 32)] {
        let mut r = ctx.map_read_async(&dst, offset, size);
        assert!(
            matches!(
                poll_once(&mut r, Waker::noop()),
                Poll::Ready(Err(Error::BadRange { .. }))
            ),
            "{offset} {size}"
        );
    }
}

/// Refusals are decided when the read-back is started: the future is ready at once (no
/// device poll), and on a destroyed device the refusal still wins over the loss, which a
/// submission would have met.
#[test]
fn out_of_range_requests_fail_before_submitting() {
    let ctx = common::ctx();
    let b = ctx.create_zeroed("b", 8).unwrap(); // 32 bytes
    let no_copy_src = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("no copy src"),
        size: 32,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });

    let check = |ctx: &Context| {
        for (offset, size) in [(0, 36), (16, 32), (u64::MAX - 3, 8), (2, 8), (0, 6)] {
            let mut fut = ctx.read_back_async(&b, offset, size);
            match poll_once(&mut fut, Waker::noop()) {
                Poll::Ready(Err(Error::BadRange { what, .. })) => {
                    assert_eq!(what, "read-back source")
                }
                other => panic!("{offset} {size}: expected BadRange, got {other:?}"),
            }
            let r = ctx.download_bytes(&b, offset, size);
            assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
        }
        let mut fut = ctx.read_back_async(&no_copy_src, 0, 16);
        assert!(matches!(
            poll_once(&mut fut, Waker::noop()),
            Poll::Ready(Err(Error::MissingUsage { needed, .. })) if needed == wgpu::BufferUsages::COPY_SRC
        ));
        // The f32 and 16-bit forms: the same refusals as download / download_as.
        let mut fut = ctx.download_async(&BufferRange::new(&b, 0, 9));
        assert!(matches!(
            poll_once(&mut fut, Waker::noop()),
            Poll::Ready(Err(Error::BadRange { .. }))
        ));
        let mut fut = ctx.download_as_async(&BufferRange::new(&b, 10, 7), Dtype::F16);
        assert!(matches!(
            poll_once(&mut fut, Waker::noop()),
            Poll::Ready(Err(Error::BadRange { .. }))
        ));
        let mut fut = ctx.download_async(&BufferRange::new(&no_copy_src, 0, 8));
        assert!(matches!(
            poll_once(&mut fut, Waker::noop()),
            Poll::Ready(Err(Error::MissingUsage { .. }))
        ));
        let r = ctx.download(&BufferRange::new(&b, u64::MAX / 4, 4));
        assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
    };
    check(&ctx);
    // The refusals changed nothing: the context still reads.
    assert_eq!(
        ctx.download(&BufferRange::whole(&b, 8)).unwrap(),
        vec![0.0; 8]
    );

    // On a destroyed device: still the refusal (nothing reached the device), while a
    // valid request fails with the loss.
    ctx.device().destroy();
    check(&ctx);
    assert!(ctx.download_bytes(&b, 0, 16).is_err());
}
