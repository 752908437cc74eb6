//! The fuzzing property, as proptests that run in CI: bytes cut
//! arbitrarily into reads and fed through the request path every server model
//! runs (`ReadBuffer` + `json::process`) never panic, every complete frame
//! before a too-large prefix gets exactly one response, in order, and after a
//! too-large prefix exactly one `frame_too_large` is the last thing written.
//!
//! The driver and the checks are in the library's `testing` module
//! (`reactor_rpc::testing`), shared with the cargo-fuzz target in `fuzz/`. Regression inputs found by the fuzzer go at
//! the bottom of this file as plain tests.

use proptest::prelude::*;
use reactor_rpc::protocol::frame::encode;
use reactor_rpc::protocol::{ErrorCode, DEFAULT_MAX_FRAME};
use reactor_rpc::session::Options;
use serde_json::json;

use reactor_rpc::testing as stream;

fn options() -> impl Strategy<Value = Options> {
    (
        any::<bool>(),
        prop_oneof![Just(DEFAULT_MAX_FRAME), Just(64u32)],
        prop_oneof![Just(usize::MAX), Just(1usize), Just(100usize)],
    )
        .prop_map(|(offload, max_frame, max_output)| Options {
            max_frame,
            offload,
            max_output,
            max_reply: reactor_rpc::session::DEFAULT_MAX_REPLY,
            max_command: reactor_rpc::protocol::resp::DEFAULT_MAX_COMMAND,
        })
}

/// Chunk sizes, cycled to cut the stream: mostly small reads, some large ones.
fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1..8usize, 1..200usize, 1..4000usize], 0..10)
}

/// One frame a client might send, and what must come back for it.
#[derive(Debug, Clone)]
enum Item {
    /// A well-formed request for a method (or an unknown one), with an id.
    Call {
        method: &'static str,
        params: serde_json::Value,
    },
    /// Arbitrary bytes as the body.
    Garbage(Vec<u8>),
    /// A body that is not UTF-8.
    NotUtf8(Vec<u8>),
    /// `ping` whose params nest this deep.
    Deep(usize),
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        "[a-z\u{e9}\u{0}]{0,4}"
    ]
}

fn scalar() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(|s| json!(s)),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    let call = |method, params: BoxedStrategy<serde_json::Value>| {
        params.prop_map(move |params| Item::Call { method, params })
    };
    prop_oneof![
        call("ping", scalar().boxed()),
        call(
            "ping",
            prop::collection::vec(scalar(), 0..4)
                .prop_map(|v| json!({"v": v}))
                .boxed()
        ),
        call("get", key().prop_map(|k| json!({"key": k})).boxed()),
        call(
            "set",
            (key(), scalar())
                .prop_map(|(k, v)| json!({"key": k, "value": v}))
                .boxed()
        ),
        call(
            "incr",
            (key(), any::<i64>())
                .prop_map(|(k, by)| json!({"key": k, "by": by}))
                .boxed()
        ),
        call("incr", key().prop_map(|k| json!({"key": k})).boxed()),
        call(
            "fib",
            prop_oneof![0..30u64, 4998..5002u64, Just(100_001)]
                .prop_map(|n| json!(n))
                .boxed()
        ),
        call("nope\u{0}", scalar().boxed()),
        call("get", scalar().boxed()),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Item::Garbage),
        prop::collection::vec(any::<u8>(), 0..20).prop_map(|mut b| {
            b.extend_from_slice(b"{\"in\":\"\xff\"}");
            Item::NotUtf8(b)
        }),
        prop_oneof![Just(1usize), Just(126), Just(127), Just(128), Just(3000)].prop_map(Item::Deep),
    ]
}

/// The frame body for item `i` (its id is `i`).
fn body(i: usize, item: &Item) -> Vec<u8> {
    match item {
        Item::Call { method, params } => {
            serde_json::to_vec(&json!({"in": method, "params": params, "id": i})).unwrap()
        }
        Item::Garbage(b) | Item::NotUtf8(b) => b.clone(),
        Item::Deep(depth) => format!(
            "{{\"in\":\"ping\",\"params\":{}{},\"id\":{i}}}",
            "[".repeat(*depth),
            "]".repeat(*depth)
        )
        .into_bytes(),
    }
}

/// Checks the reply to item `i` against what the protocol promises for it.
fn check_reply(i: usize, item: &Item, reply: &stream::Reply) {
    let id = Some(i.to_string());
    let what = format!("reply {i} to {item:?}: {reply:?}");
    match item {
        Item::Call { method: "ping", .. } => {
            assert_eq!((reply.out.as_str(), &reply.id), ("pong", &id), "{what}")
        }
        Item::Call {
            method: "nope\u{0}",
            ..
        } => {
            assert_eq!(
                (reply.code, &reply.id),
                (Some(ErrorCode::UnknownMethod), &id),
                "{what}"
            )
        }
        Item::Call { method, .. } => {
            assert!(reply.out == *method || reply.out == "error", "{what}");
            assert!(
                matches!(reply.code, None | Some(ErrorCode::BadParams)),
                "{what}"
            );
            assert_eq!(reply.id, id, "{what}");
        }
        Item::Garbage(_) => {
            assert!(
                matches!(reply.code, Some(ErrorCode::BadJson | ErrorCode::BadRequest)),
                "{what}"
            );
        }
        Item::NotUtf8(_) => assert_eq!(
            (reply.code, &reply.id),
            (Some(ErrorCode::BadJson), &None),
            "{what}"
        ),
        Item::Deep(depth) if depth + 1 > 128 => {
            assert_eq!(
                (reply.code, &reply.id),
                (Some(ErrorCode::BadJson), &None),
                "{what}"
            )
        }
        Item::Deep(_) => assert_eq!((reply.out.as_str(), &reply.id), ("pong", &id), "{what}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_bytes_cut_anyhow(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        sizes in cuts(),
        opt in options(),
    ) {
        stream::check(&bytes, &sizes, opt, stream::clock_free(&bytes));
    }

    #[test]
    fn arbitrary_bodies_in_valid_frames(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..12),
        sizes in cuts(),
        opt in options(),
    ) {
        let mut bytes = Vec::new();
        for b in &bodies {
            encode(&mut bytes, b);
        }
        let checked = stream::check(&bytes, &sizes, opt, stream::clock_free(&bytes));
        // No body here exceeds 80 bytes, so only a 64-byte limit closes early.
        if opt.max_frame == DEFAULT_MAX_FRAME {
            prop_assert_eq!(checked.replies.len(), bodies.len());
        }
    }

    #[test]
    fn mixed_requests_each_get_their_answer_in_order(
        items in prop::collection::vec(item(), 0..16),
        too_large in prop::option::of(((DEFAULT_MAX_FRAME + 1)..=u32::MAX, prop::collection::vec(item(), 0..3))),
        sizes in cuts(),
        offload in any::<bool>(),
        max_output in prop_oneof![Just(usize::MAX), Just(1usize)],
    ) {
        let mut bytes = Vec::new();
        for (i, item) in items.iter().enumerate() {
            encode(&mut bytes, &body(i, item));
        }
        if let Some((len, after)) = &too_large {
            bytes.extend_from_slice(&len.to_le_bytes());
            for (i, item) in after.iter().enumerate() {
                encode(&mut bytes, &body(items.len() + i, item));
            }
        }
        let opt = Options { max_output, offload, ..Options::new(DEFAULT_MAX_FRAME) };
        // No TTLs here, so the reply bytes must match the oracle's exactly.
        let checked = stream::check(&bytes, &sizes, opt, true);
        prop_assert_eq!(checked.closed, too_large.is_some());
        prop_assert_eq!(&checked.served[..checked.expected.len()], &checked.expected[..]);
        prop_assert_eq!(checked.replies.len(), items.len() + usize::from(too_large.is_some()));
        for (i, (item, reply)) in items.iter().zip(&checked.replies).enumerate() {
            check_reply(i, item, reply);
        }

        // Offloading to a worker changes nothing a client can see.
        let other = Options { offload: !offload, ..opt };
        let again = stream::check(&bytes, &sizes, other, true);
        prop_assert_eq!(again.served, checked.served);
    }
}
