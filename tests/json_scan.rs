//! The hand-written envelope scanner must accept exactly the JSON that
//! serde_json accepts (within the nesting limit), on arbitrary input: valid
//! documents, mutated ones, and soup made of JSON's own characters.

use proptest::prelude::*;
use reactor_rpc::protocol::json::{Json, MAX_DEPTH};
use serde::de::IgnoredAny;
use serde_json::Value;

fn serde_accepts(text: &str) -> bool {
    serde_json::from_str::<IgnoredAny>(text).is_ok()
}

fn depth(text: &str) -> usize {
    let (mut d, mut max) = (0usize, 0usize);
    for c in text.chars() {
        match c {
            '[' | '{' => {
                d += 1;
                max = max.max(d)
            }
            ']' | '}' => d = d.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid document, pretty or compact, then one byte-level edit.
fn mutated() -> impl Strategy<Value = String> {
    (
        value(),
        any::<bool>(),
        any::<prop::sample::Index>(),
        0u8..4,
        "[\\[\\]{},:\"\\\\u0-9a-f.eE+\\- tnrl\\x01]",
    )
        .prop_map(|(v, pretty, at, op, c)| {
            let mut s = if pretty {
                serde_json::to_string_pretty(&v)
            } else {
                serde_json::to_string(&v)
            }
            .unwrap();
            let mut boundaries: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
            boundaries.push(s.len());
            let i = boundaries[at.index(boundaries.len())];
            match op {
                0 => {}
                1 => s.insert_str(i, &c),
                2 if i < s.len() => {
                    s.remove(i);
                }
                _ => s.truncate(i),
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn agrees_with_serde_on_mutated_documents(text in mutated()) {
        prop_assert_eq!(Json::new(&text).is_some(), serde_accepts(&text), "{:?}", text);
    }

    #[test]
    fn agrees_with_serde_on_character_soup(text in "[\\[\\]{},:\"\\\\u0-9a-fA-F.eE+\\- \\n\\ttrueflsn\\x01\\x7fé]{0,24}") {
        prop_assume!(depth(&text) < MAX_DEPTH);
        prop_assert_eq!(Json::new(&text).is_some(), serde_accepts(&text), "{:?}", text);
    }

    #[test]
    fn valid_documents_are_accepted_verbatim(v in value()) {
        let text = serde_json::to_string(&v).unwrap();
        prop_assert_eq!(Json::new(&text).map(Json::get), Some(text.as_str()));
    }
}
