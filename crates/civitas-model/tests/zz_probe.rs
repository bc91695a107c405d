use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};
fn text_safe_f64() -> BoxedStrategy<f64> {
    prop_oneof![
        (0u64..10_000_000, 0u32..4).prop_map(|(n, k)| n as f64 / 10f64.powi(k as i32)),
        (0u64..(1 << 53)).prop_map(|n| n as f64),
        Just(0.0),
    ]
    .boxed()
}
#[test]
fn probe() {
    let mut r = TestRunner::default();
    let s = (text_safe_f64(), any::<bool>()).prop_map(|(f, neg)| json!(if neg { -f } else { f }));
    let mut bad = 0;
    for _ in 0..100000 {
        let v = s.new_tree(&mut r).unwrap().current();
        let t = serde_json::to_string(&v).unwrap();
        let back: Value = serde_json::from_str(&t).unwrap();
        if back != v { bad += 1; if bad < 5 { println!("{v:?} -> {t} -> {back:?}"); } }
    }
    println!("bad {bad}");
}
